#include "io/model_path.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "io/hub.h"

namespace kiln::io {
namespace {

std::string HomeDir() {
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return home;
  const passwd* pw = ::getpwuid(::getuid());
  return pw != nullptr && pw->pw_dir != nullptr ? pw->pw_dir : ".";
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string KilnCacheDir() {
  const char* env = std::getenv("KILN_CACHE");
  if (env != nullptr && *env != '\0') return env;
  return HomeDir() + "/.cache/kiln";
}

StatusOr<std::string> ResolveModelPath(const std::string& spec) {
  if (spec.rfind("hf://", 0) == 0) {
    KILN_ASSIGN_OR_RETURN(HubRef ref, ParseHubRef(spec));
    return HubFetch(ref, HubOptions::FromEnv());
  }
  if (spec.empty()) return InvalidArgument("empty model path");
  if (Exists(spec)) return spec;
  if (spec == "default") {
    std::string path = KilnCacheDir() + "/models/default.gguf";
    if (Exists(path)) return path;
    return NotFound("default model %s is missing: run scripts/fetch_models.sh", path.c_str());
  }
  return NotFound("model '%s' not found: expected a .gguf file, a Hugging Face model folder, "
                  "hf://org/name[/file], or 'default'", spec.c_str());
}

}  // namespace kiln::io
