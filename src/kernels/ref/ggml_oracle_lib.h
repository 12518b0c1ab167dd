// Test helper: where the ggml oracle libraries are (npm @node-llama-cpp/linux-x64 ships
// libggml-base.so and the libggml-cpu-*.so variants beside it). Used by the tests that dlopen
// ggml to compare kiln's kernels with it bit for bit.
#pragma once

#include <glob.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace kiln::kernels::test {

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// $KILN_GGML_BASE_LIB, else the first libggml-base.so under $KILN_DEPS, ./.deps (ctest runs in
// the source tree) or /work/main/.deps; "" when none is installed.
inline std::string FindGgmlBaseLib() {
  if (!Env("KILN_GGML_BASE_LIB").empty()) return Env("KILN_GGML_BASE_LIB");
  std::vector<std::string> roots;
  if (!Env("KILN_DEPS").empty()) roots.push_back(Env("KILN_DEPS"));
  roots.push_back(".deps");
  roots.push_back("/work/main/.deps");
  for (const std::string& root : roots) {
    const std::string pattern =
        root + "/node/node_modules/@node-llama-cpp/linux-x64/bins/*/libggml-base.so";
    glob_t g;
    const bool found = glob(pattern.c_str(), 0, nullptr, &g) == 0 && g.gl_pathc > 0;
    std::string path = found ? g.gl_pathv[0] : "";
    globfree(&g);
    if (found) return path;
  }
  return "";
}

}  // namespace kiln::kernels::test
