#include "model/resolve.h"

#include "io/model_path.h"

namespace kiln::model {

StatusOr<std::string> ResolveModelReference(const std::string& reference) {
  return io::ResolveModelPath(reference);
}

StatusOr<std::unique_ptr<io::TensorSource>> OpenModelSource(const std::string& reference) {
  KILN_ASSIGN_OR_RETURN(std::string path, ResolveModelReference(reference));
  return io::OpenTensorSource(path);
}

}  // namespace kiln::model
