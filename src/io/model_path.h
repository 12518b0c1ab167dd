// Turns what a user passes as -m MODEL into a local path: an existing file or folder, the
// word `default` (the model scripts/fetch_models.sh caches), or an hf:// reference
// (downloaded into the Hugging Face cache, see hub.h).
#pragma once

#include <string>

#include "base/status.h"

namespace kiln::io {

// $KILN_CACHE, else ~/.cache/kiln.
std::string KilnCacheDir();

// Returns the local path of a .gguf file or a Hugging Face model folder.
StatusOr<std::string> ResolveModelPath(const std::string& spec);

}  // namespace kiln::io
