// Model references for the layers above model/ (which may not use io/ directly): resolves
// "default", paths and hf:// references, and opens a source for inspection.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "io/tensor_source.h"

namespace kiln::model {

// Local path for a reference; downloads hf:// references into the cache.
StatusOr<std::string> ResolveModelReference(const std::string& reference);
// Resolves and opens the file or folder (no compute state).
StatusOr<std::unique_ptr<io::TensorSource>> OpenModelSource(const std::string& reference);

}  // namespace kiln::model
