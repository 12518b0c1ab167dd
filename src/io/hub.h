// Hugging Face hub downloads into the hub's own cache layout, so files fetched by kiln and by
// huggingface_hub are shared:
//   $HF_HOME/hub/models--{org}--{name}/blobs/{sha256 or blob id}
//                                     /snapshots/{commit}/{file} -> ../../blobs/{blob}
//                                     /refs/{revision}            (holds the commit)
// Downloads resume (`<blob>.incomplete` + HTTP Range), are checked for size and sha256, retry
// transient failures a bounded number of times, and fall back to a complete cached snapshot
// offline (HF_HUB_OFFLINE=1, or the hub unreachable).
// Non-goals: datasets/spaces, uploads, concurrent downloads of one blob by two processes.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace kiln::io {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string cache_dir;                            // HF_HUB_CACHE, else $HF_HOME/hub
  std::string token;                                // HF_TOKEN, sent as a Bearer token
  bool offline = false;                             // HF_HUB_OFFLINE=1
  bool progress = true;       // progress bar on stderr (a TTY), else a line every 10 s
  long connect_timeout_s = 20;
  long stall_timeout_s = 60;  // abort a transfer that moves no bytes for this long
  int max_attempts = 4;       // per request, for transient errors (network, 5xx, 429)
  double retry_backoff_s = 1.0;  // doubled after each failed attempt

  // Defaults above, overridden by the environment variables named above; also
  // KILN_HUB_MAX_ATTEMPTS, KILN_HUB_BACKOFF_S and KILN_HUB_STALL_TIMEOUT_S (for tests).
  static HubOptions FromEnv();
};

// "hf://org/name", "hf://org/name@rev", "hf://org/name/path/file.gguf", "hf://org/name@rev/file".
struct HubRef {
  std::string org;
  std::string name;
  std::string revision = "main";
  std::string file;  // empty: the whole model (config, tokenizer files, safetensors)

  std::string RepoId() const { return org + "/" + name; }
};

StatusOr<HubRef> ParseHubRef(std::string_view spec);

// models--{org}--{name} under opts.cache_dir.
std::string HubRepoDir(const HubOptions& opts, const HubRef& ref);

// Downloads (or reuses) what `ref` names and returns its local path: the .gguf file (a file
// was named, or the repo holds exactly one .gguf and no safetensors) or the snapshot folder
// (config.json, tokenizer files, safetensors single or sharded).
StatusOr<std::string> HubFetch(const HubRef& ref, const HubOptions& opts);

}  // namespace kiln::io
