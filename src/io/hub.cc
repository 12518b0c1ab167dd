#include "io/hub.h"

#include <curl/curl.h>
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/logging.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "io/sha256.h"

namespace kiln::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kAuxFiles[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                     "generation_config.json", "special_tokens_map.json"};
constexpr size_t kMaxApiBytes = 64ull << 20;

// ── small helpers ────────────────────────────────────────────────────────────────────────

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

bool EnvTrue(const char* name) {
  std::string v = Env(name);
  return v == "1" || v == "true" || v == "TRUE" || v == "yes" || v == "on" || v == "ON";
}

std::string HomeDir() {
  std::string home = Env("HOME");
  if (!home.empty()) return home;
  const passwd* pw = ::getpwuid(::getuid());
  return pw != nullptr && pw->pw_dir != nullptr ? pw->pw_dir : ".";
}

bool IsHex(std::string_view s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Repo ids, revisions and file names become cache paths: allow only safe relative paths.
bool IsSafeName(std::string_view s, bool allow_slash) {
  if (s.empty() || s.front() == '/' || s.back() == '/') return false;
  for (char c : s) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
              (allow_slash && c == '/');
    if (!ok && !(allow_slash && (c == ' ' || c == '+' || c == '=' || c == ','))) return false;
  }
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('/', start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view part = s.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

std::string UrlEscapePath(std::string_view s) {
  std::string out;
  static const char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("%s does not exist", path.c_str());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteFileAtomic(const std::string& path, std::string_view text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return Internal("cannot write %s", tmp.c_str());
  }
  fs::rename(tmp, path, ec);
  if (ec) return Internal("cannot rename %s: %s", tmp.c_str(), ec.message().c_str());
  return Status::Ok();
}

// ── HTTP ─────────────────────────────────────────────────────────────────────────────────

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

CurlPtr NewHandle(const std::string& url, const HubOptions& opts, curl_slist** headers) {
  GlobalInitOnce();
  CurlPtr curl(curl_easy_init());
  KILN_CHECK(curl != nullptr) << "curl_easy_init failed";
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, opts.connect_timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, opts.stall_timeout_s);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln/0.1");
  if (!opts.token.empty()) {
    // A custom Authorization header is not forwarded to other hosts on redirects (CDN).
    *headers = curl_slist_append(*headers, ("Authorization: Bearer " + opts.token).c_str());
  }
  if (*headers != nullptr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers);
  return curl;
}

// Maps a finished transfer to a Status. Unavailable means "worth retrying".
Status TransferStatus(CURL* c, CURLcode rc, const std::string& url, const char* errbuf) {
  long http = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
  if (rc == CURLE_OK) return Status::Ok();
  if (rc == CURLE_HTTP_RETURNED_ERROR) {
    if (http == 404) return NotFound("%s: HTTP 404 (no such repo, revision or file)", url.c_str());
    if (http == 401 || http == 403) {
      return FailedPrecondition("%s: HTTP %ld: access denied (gated or private repo? set HF_TOKEN)",
                                url.c_str(), http);
    }
    if (http == 416) return OutOfRange("%s: HTTP 416 (range not satisfiable)", url.c_str());
    if (http == 429 || http >= 500) return Unavailable("%s: HTTP %ld", url.c_str(), http);
    return InvalidArgument("%s: HTTP %ld", url.c_str(), http);
  }
  if (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK) {
    return Internal("%s: writing the download failed: %s", url.c_str(), errbuf);
  }
  return Unavailable("%s: %s", url.c_str(), errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

void SleepBackoff(const HubOptions& opts, int attempt) {
  double s = opts.retry_backoff_s * static_cast<double>(1 << std::min(attempt, 6));
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

size_t AppendToString(char* p, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() + size * n > kMaxApiBytes) return 0;  // aborts the transfer
  out->append(p, size * n);
  return size * n;
}

StatusOr<std::string> HttpGetText(const std::string& url, const HubOptions& opts) {
  Status last;
  for (int attempt = 0; attempt < opts.max_attempts; ++attempt) {
    if (attempt > 0) SleepBackoff(opts, attempt - 1);
    curl_slist* raw_headers = nullptr;
    CurlPtr curl = NewHandle(url, opts, &raw_headers);
    SlistPtr headers(raw_headers);
    std::string body;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, AppendToString);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(curl.get());
    last = TransferStatus(curl.get(), rc, url, errbuf);
    if (last.ok()) return body;
    if (last.code() != StatusCode::kUnavailable) return last;
  }
  return last;
}

// ── progress ─────────────────────────────────────────────────────────────────────────────

struct Progress {
  std::string name;
  bool enabled = false;
  bool tty = false;
  int64_t base = 0;  // bytes already on disk before this transfer (resume)
  std::chrono::steady_clock::time_point start, last;
  bool drew = false;

  static std::string Mb(double bytes) {
    if (bytes < 1e3) return StrFormat("%.0f B", bytes);
    if (bytes < 1e6) return StrFormat("%.1f kB", bytes / 1e3);
    if (bytes < 1e9) return StrFormat("%.1f MB", bytes / 1e6);
    return StrFormat("%.2f GB", bytes / 1e9);
  }

  void Draw(int64_t now_bytes, int64_t total, bool final_line) {
    auto now = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(now - start).count();
    double rate = secs > 0 ? static_cast<double>(now_bytes - base) / secs : 0;
    std::string pct = total > 0 ? StrFormat("%3d%%", static_cast<int>(100.0 * now_bytes / total))
                                : std::string("  ?%");
    std::string line = StrFormat("%s %s %s/%s %s/s", name.c_str(), pct.c_str(),
                                 Mb(now_bytes).c_str(), total > 0 ? Mb(total).c_str() : "?",
                                 Mb(rate).c_str());
    if (tty) {
      std::fprintf(stderr, "\r%-78s%s", line.c_str(), final_line ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    drew = true;
  }

  static int Callback(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
    auto* p = static_cast<Progress*>(user);
    if (!p->enabled) return 0;
    auto now = std::chrono::steady_clock::now();
    auto interval = p->tty ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
    if (now - p->last >= interval) {
      p->last = now;
      p->Draw(p->base + dlnow, dltotal > 0 ? p->base + dltotal : 0, false);
    }
    return 0;
  }
};

// ── one file download with resume ────────────────────────────────────────────────────────

struct FileSink {
  std::FILE* f = nullptr;
  CURL* curl = nullptr;
  bool ranged = false;    // we sent a Range header
  bool checked = false;   // response code looked at
  bool restarted = false; // server ignored Range: file truncated, writing from 0
  static size_t Write(char* p, size_t size, size_t n, void* user) {
    auto* s = static_cast<FileSink*>(user);
    if (!s->checked) {
      s->checked = true;
      long http = 0;
      curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &http);
      if (s->ranged && http == 200) {  // full body instead of the range: start over
        if (std::fflush(s->f) != 0 || ::ftruncate(fileno(s->f), 0) != 0) return 0;
        std::fseek(s->f, 0, SEEK_SET);
        s->restarted = true;
      }
    }
    return std::fwrite(p, size, n, s->f);
  }
};

int64_t FileSize(const std::string& path) {
  std::error_code ec;
  uintmax_t n = fs::file_size(path, ec);
  return ec ? -1 : static_cast<int64_t>(n);
}

// One attempt: appends to `part` from its current size. Ok when the server says complete.
Status DownloadAttempt(const std::string& url, const std::string& part, int64_t expected_size,
                       const std::string& display, const HubOptions& opts) {
  int64_t have = std::max<int64_t>(FileSize(part), 0);
  std::FILE* f = std::fopen(part.c_str(), "ab");
  if (f == nullptr) return Internal("cannot write %s", part.c_str());
  curl_slist* raw_headers = nullptr;
  if (have > 0) {
    raw_headers = curl_slist_append(raw_headers, StrFormat("Range: bytes=%lld-",
                                                           static_cast<long long>(have)).c_str());
  }
  CurlPtr curl = NewHandle(url, opts, &raw_headers);
  SlistPtr headers(raw_headers);
  FileSink sink{f, curl.get(), have > 0};
  Progress progress;
  progress.name = display;
  progress.enabled = opts.progress;
  progress.tty = ::isatty(2) != 0;
  progress.base = have;
  progress.start = progress.last = std::chrono::steady_clock::now();
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, FileSink::Write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, Progress::Callback);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &progress);
  CURLcode rc = curl_easy_perform(c);
  bool write_failed = std::fclose(f) != 0;
  Status st = TransferStatus(c, rc, url, errbuf);
  if (st.ok() && write_failed) st = Internal("cannot write %s", part.c_str());
  if (st.code() == StatusCode::kOutOfRange && expected_size >= 0 && have == expected_size) {
    st = Status::Ok();  // we already had every byte
  }
  if (opts.progress && (st.ok() || progress.drew)) {
    int64_t now = std::max<int64_t>(FileSize(part), 0);
    if (progress.tty || st.ok()) progress.Draw(now, expected_size, true);
  }
  return st;
}

// Downloads url into blob (via blob.incomplete), checking size and sha256 when known.
Status DownloadBlob(const std::string& url, const std::string& blob, int64_t expected_size,
                    const std::string& expected_sha256, const std::string& display,
                    const HubOptions& opts) {
  std::string part = blob + ".incomplete";
  Status st;
  for (int attempt = 0; attempt < opts.max_attempts; ++attempt) {
    if (attempt > 0) SleepBackoff(opts, attempt - 1);
    int64_t have = FileSize(part);
    if (expected_size >= 0 && have > expected_size) {
      std::error_code ec;
      fs::remove(part, ec);  // longer than the real file: not ours, start over
    }
    st = DownloadAttempt(url, part, expected_size, display, opts);
    if (st.ok()) break;
    if (st.code() == StatusCode::kOutOfRange) {  // stale partial file: start over
      std::error_code ec;
      fs::remove(part, ec);
      continue;
    }
    if (st.code() != StatusCode::kUnavailable) return st;
    KILN_LOG(kWarn, "download of %s failed (attempt %d/%d): %s", display.c_str(), attempt + 1,
             opts.max_attempts, st.message().c_str());
  }
  if (!st.ok()) return st;
  int64_t got = FileSize(part);
  if (expected_size >= 0 && got != expected_size) {
    std::error_code ec;
    fs::remove(part, ec);
    return DataLoss("%s: downloaded %lld bytes, expected %lld", display.c_str(),
                    static_cast<long long>(got), static_cast<long long>(expected_size));
  }
  if (!expected_sha256.empty()) {
    KILN_ASSIGN_OR_RETURN(std::string sha, Sha256FileHex(part));
    if (sha != expected_sha256) {
      std::error_code ec;
      fs::remove(part, ec);
      return DataLoss("%s: sha256 mismatch: expected %s, got %s", display.c_str(),
                      expected_sha256.c_str(), sha.c_str());
    }
  }
  std::error_code ec;
  fs::rename(part, blob, ec);
  if (ec) return Internal("cannot rename %s: %s", part.c_str(), ec.message().c_str());
  return Status::Ok();
}

// ── repo info ────────────────────────────────────────────────────────────────────────────

struct Sibling {
  std::string name;
  int64_t size = -1;
  std::string sha256;   // LFS files
  std::string blob_id;  // git blob id (non-LFS files)
};

struct RepoInfo {
  std::string commit;
  std::vector<Sibling> siblings;
  const Sibling* Find(std::string_view name) const {
    for (const Sibling& s : siblings) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }
};

StatusOr<RepoInfo> ParseRepoInfo(const std::string& text, const std::string& repo) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument("hub: model info for %s is not a JSON object", repo.c_str());
  }
  RepoInfo info;
  auto sha = j.find("sha");
  if (sha == j.end() || !sha->is_string() || !IsHex(sha->get<std::string>(), 40)) {
    return InvalidArgument("hub: model info for %s has no commit sha", repo.c_str());
  }
  info.commit = sha->get<std::string>();
  auto sib = j.find("siblings");
  if (sib == j.end() || !sib->is_array()) {
    return InvalidArgument("hub: model info for %s has no file list", repo.c_str());
  }
  for (const json& s : *sib) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) continue;
    Sibling f;
    f.name = s["rfilename"].get<std::string>();
    if (s.contains("size") && s["size"].is_number_unsigned()) f.size = s["size"].get<int64_t>();
    if (s.contains("blobId") && s["blobId"].is_string() && IsHex(s["blobId"].get<std::string>(), 40)) {
      f.blob_id = s["blobId"].get<std::string>();
    }
    if (s.contains("lfs") && s["lfs"].is_object()) {
      const json& lfs = s["lfs"];
      if (lfs.contains("sha256") && lfs["sha256"].is_string() &&
          IsHex(lfs["sha256"].get<std::string>(), 64)) {
        f.sha256 = lfs["sha256"].get<std::string>();
      }
      if (lfs.contains("size") && lfs["size"].is_number_unsigned()) {
        f.size = lfs["size"].get<int64_t>();
      }
    }
    info.siblings.push_back(std::move(f));
  }
  return info;
}

// ── cache layout ─────────────────────────────────────────────────────────────────────────

struct Cache {
  std::string repo_dir;
  std::string Snapshot(const std::string& commit) const { return repo_dir + "/snapshots/" + commit; }
  std::string Blob(const std::string& id) const { return repo_dir + "/blobs/" + id; }
  std::string Ref(const std::string& rev) const { return repo_dir + "/refs/" + rev; }
};

// snapshots/<commit>/<file> -> ../../blobs/<blob> (one more ../ per folder in file).
Status LinkSnapshot(const Cache& cache, const std::string& commit, const std::string& file,
                    const std::string& blob_id) {
  fs::path link = cache.Snapshot(commit) + "/" + file;
  std::error_code ec;
  fs::create_directories(link.parent_path(), ec);
  std::string target = "../../";
  for (char c : file) {
    if (c == '/') target += "../";
  }
  target += "blobs/" + blob_id;
  fs::path tmp = link.string() + ".tmp-link";
  fs::remove(tmp, ec);
  fs::create_symlink(target, tmp, ec);
  if (ec) return Internal("cannot create symlink %s: %s", tmp.c_str(), ec.message().c_str());
  fs::rename(tmp, link, ec);
  if (ec) return Internal("cannot create %s: %s", link.c_str(), ec.message().c_str());
  return Status::Ok();
}

struct Fetcher {
  const HubRef& ref;
  const HubOptions& opts;
  Cache cache;
  RepoInfo info;

  std::string ResolveUrl(const std::string& file) const {
    return opts.endpoint + "/" + UrlEscapePath(ref.RepoId()) + "/resolve/" + info.commit + "/" +
           UrlEscapePath(file);
  }

  // Downloads one file (unless its blob is cached) and links it into the snapshot.
  Status Fetch(const Sibling& s) {
    if (!IsSafeName(s.name, true)) {
      return InvalidArgument("hub: refusing unsafe file name '%s'", s.name.c_str());
    }
    std::error_code ec;
    fs::create_directories(cache.repo_dir + "/blobs", ec);
    std::string id = !s.sha256.empty() ? s.sha256 : s.blob_id;
    std::string display = ref.RepoId() + "/" + s.name;
    if (!id.empty()) {
      std::string blob = cache.Blob(id);
      int64_t have = FileSize(blob);
      if (have < 0 || (s.size >= 0 && have != s.size)) {
        KILN_RETURN_IF_ERROR(DownloadBlob(ResolveUrl(s.name), blob, s.size, s.sha256, display, opts));
      }
    } else {
      // No id from the hub: download under a name of our own, then name the blob by its sha256.
      std::string tmp = cache.Blob("tmp-" + info.commit + "-" + Sha256Hex(s.name).substr(0, 16));
      KILN_RETURN_IF_ERROR(DownloadBlob(ResolveUrl(s.name), tmp, s.size, "", display, opts));
      KILN_ASSIGN_OR_RETURN(id, Sha256FileHex(tmp));
      fs::rename(tmp, cache.Blob(id), ec);
      if (ec) return Internal("cannot rename %s: %s", tmp.c_str(), ec.message().c_str());
    }
    return LinkSnapshot(cache, info.commit, s.name, id);
  }

  std::vector<std::string> GgufFiles() const {
    std::vector<std::string> out;
    for (const Sibling& s : info.siblings) {
      if (EndsWith(s.name, ".gguf")) out.push_back(s.name);
    }
    return out;
  }

  // Fetches the files the ref names; returns the path to hand to OpenTensorSource.
  StatusOr<std::string> Run() {
    std::string snapshot = cache.Snapshot(info.commit);
    if (!ref.file.empty()) {
      const Sibling* s = info.Find(ref.file);
      if (s == nullptr) {
        return NotFound("hub: %s@%s has no file '%s'", ref.RepoId().c_str(),
                        ref.revision.c_str(), ref.file.c_str());
      }
      KILN_RETURN_IF_ERROR(Fetch(*s));
      return snapshot + "/" + ref.file;
    }
    const Sibling* index = info.Find("model.safetensors.index.json");
    const Sibling* single = info.Find("model.safetensors");
    if (index == nullptr && single == nullptr) return PickGguf(snapshot);
    if (info.Find("config.json") == nullptr) {
      return NotFound("hub: %s has safetensors but no config.json", ref.RepoId().c_str());
    }
    for (const char* aux : kAuxFiles) {
      if (const Sibling* s = info.Find(aux)) KILN_RETURN_IF_ERROR(Fetch(*s));
    }
    if (index != nullptr) {
      KILN_RETURN_IF_ERROR(Fetch(*index));
      KILN_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(snapshot + "/" + index->name));
      KILN_ASSIGN_OR_RETURN(std::vector<std::string> shards, ParseSafetensorsIndex(text));
      for (const std::string& shard : shards) {
        const Sibling* s = info.Find(shard);
        if (s == nullptr) {
          return NotFound("hub: %s: index names shard '%s', which the repo does not have",
                          ref.RepoId().c_str(), shard.c_str());
        }
        KILN_RETURN_IF_ERROR(Fetch(*s));
      }
    } else {
      KILN_RETURN_IF_ERROR(Fetch(*single));
    }
    return snapshot;
  }

  StatusOr<std::string> PickGguf(const std::string& snapshot) {
    std::vector<std::string> ggufs = GgufFiles();
    if (ggufs.empty()) {
      return NotFound("hub: %s has neither safetensors nor .gguf files", ref.RepoId().c_str());
    }
    if (ggufs.size() > 1) {
      std::string list;
      for (const std::string& g : ggufs) list += "\n  hf://" + ref.RepoId() + "/" + g;
      return InvalidArgument("hub: %s has several .gguf files; name one:%s",
                             ref.RepoId().c_str(), list.c_str());
    }
    KILN_RETURN_IF_ERROR(Fetch(*info.Find(ggufs[0])));
    return snapshot + "/" + ggufs[0];
  }
};

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);  // follows symlinks: a dangling link does not count
}

// The cached answer for ref, if the snapshot it needs is complete.
StatusOr<std::string> ResolveCached(const HubRef& ref, const Cache& cache) {
  std::string commit;
  if (IsHex(ref.revision, 40) && Exists(cache.Snapshot(ref.revision))) {
    commit = ref.revision;
  } else {
    StatusOr<std::string> text = ReadSmallFile(cache.Ref(ref.revision));
    if (!text.ok()) {
      return NotFound("no cached copy of %s@%s in %s", ref.RepoId().c_str(),
                      ref.revision.c_str(), cache.repo_dir.c_str());
    }
    commit = *text;
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    if (!IsHex(commit, 40)) return NotFound("corrupt cache ref %s", cache.Ref(ref.revision).c_str());
  }
  std::string snapshot = cache.Snapshot(commit);
  if (!ref.file.empty()) {
    std::string path = snapshot + "/" + ref.file;
    if (Exists(path)) return path;
    return NotFound("cached snapshot %s has no %s", snapshot.c_str(), ref.file.c_str());
  }
  if (Exists(snapshot + "/config.json")) {
    std::string index = snapshot + "/model.safetensors.index.json";
    if (Exists(index)) {
      KILN_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(index));
      KILN_ASSIGN_OR_RETURN(std::vector<std::string> shards, ParseSafetensorsIndex(text));
      for (const std::string& shard : shards) {
        if (!Exists(snapshot + "/" + shard)) {
          return NotFound("cached snapshot %s is incomplete (no %s)", snapshot.c_str(),
                          shard.c_str());
        }
      }
      return snapshot;
    }
    if (Exists(snapshot + "/model.safetensors")) return snapshot;
  }
  std::vector<std::string> ggufs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(snapshot, ec)) {
    if (EndsWith(e.path().filename().string(), ".gguf") && Exists(e.path().string())) {
      ggufs.push_back(e.path().string());
    }
  }
  if (ggufs.size() == 1) return ggufs[0];
  return NotFound("cached snapshot %s is incomplete", snapshot.c_str());
}

}  // namespace

HubOptions HubOptions::FromEnv() {
  HubOptions o;
  std::string endpoint = Env("HF_ENDPOINT");
  if (!endpoint.empty()) o.endpoint = endpoint;
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  o.cache_dir = Env("HF_HUB_CACHE");
  if (o.cache_dir.empty()) {
    std::string home = Env("HF_HOME");
    if (home.empty()) home = HomeDir() + "/.cache/huggingface";
    o.cache_dir = home + "/hub";
  }
  o.token = Env("HF_TOKEN");
  o.offline = EnvTrue("HF_HUB_OFFLINE");
  if (int n = std::atoi(Env("KILN_HUB_MAX_ATTEMPTS").c_str()); n > 0) o.max_attempts = n;
  if (std::string b = Env("KILN_HUB_BACKOFF_S"); !b.empty()) o.retry_backoff_s = std::atof(b.c_str());
  if (long t = std::atol(Env("KILN_HUB_STALL_TIMEOUT_S").c_str()); t > 0) {
    o.stall_timeout_s = t;
    o.connect_timeout_s = std::min(o.connect_timeout_s, t);
  }
  return o;
}

StatusOr<HubRef> ParseHubRef(std::string_view spec) {
  constexpr std::string_view kScheme = "hf://";
  if (spec.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgument("'%.*s' is not an hf:// reference", static_cast<int>(spec.size()),
                           spec.data());
  }
  std::string_view rest = spec.substr(kScheme.size());
  HubRef ref;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return InvalidArgument("'%.*s': expected hf://org/name[@revision][/file]",
                           static_cast<int>(spec.size()), spec.data());
  }
  ref.org = std::string(rest.substr(0, slash));
  rest = rest.substr(slash + 1);
  slash = rest.find('/');
  std::string_view name = rest.substr(0, slash);
  bool has_file = slash != std::string_view::npos;
  if (has_file) ref.file = std::string(rest.substr(slash + 1));
  if (size_t at = name.find('@'); at != std::string_view::npos) {
    ref.revision = std::string(name.substr(at + 1));
    name = name.substr(0, at);
  }
  ref.name = std::string(name);
  if (!IsSafeName(ref.org, false) || !IsSafeName(ref.name, false) ||
      !IsSafeName(ref.revision, false) || (has_file && !IsSafeName(ref.file, true))) {
    return InvalidArgument("'%.*s': bad org, name, revision or file (expected "
                           "hf://org/name[@revision][/file])",
                           static_cast<int>(spec.size()), spec.data());
  }
  return ref;
}

std::string HubRepoDir(const HubOptions& opts, const HubRef& ref) {
  return opts.cache_dir + "/models--" + ref.org + "--" + ref.name;
}

StatusOr<std::string> HubFetch(const HubRef& ref, const HubOptions& opts) {
  Cache cache{HubRepoDir(opts, ref)};
  if (opts.offline) {
    StatusOr<std::string> cached = ResolveCached(ref, cache);
    if (!cached.ok()) return cached.status().WithContext("HF_HUB_OFFLINE is set");
    return cached;
  }
  std::string url = opts.endpoint + "/api/models/" + UrlEscapePath(ref.RepoId()) + "/revision/" +
                    UrlEscapePath(ref.revision) + "?blobs=true";
  StatusOr<std::string> text = HttpGetText(url, opts);
  if (!text.ok()) {
    if (text.status().code() != StatusCode::kUnavailable) return text.status();
    StatusOr<std::string> cached = ResolveCached(ref, cache);
    if (cached.ok()) {
      KILN_LOG(kWarn, "hub unreachable (%s); using cached %s", text.status().message().c_str(),
               cached->c_str());
      return cached;
    }
    return Unavailable("hub unreachable (%s) and %s", text.status().message().c_str(),
                       cached.status().message().c_str());
  }
  KILN_ASSIGN_OR_RETURN(RepoInfo info, ParseRepoInfo(*text, ref.RepoId()));
  Fetcher fetcher{ref, opts, cache, std::move(info)};
  KILN_ASSIGN_OR_RETURN(std::string path, fetcher.Run());
  if (ref.revision != fetcher.info.commit) {
    KILN_RETURN_IF_ERROR(WriteFileAtomic(cache.Ref(ref.revision), fetcher.info.commit));
  }
  return path;
}

}  // namespace kiln::io
