// kiln_hub_fetch SPEC: resolves a model spec (path, `default`, hf://org/name[@rev][/file]) the
// way `kiln` does, downloading into the Hugging Face cache if needed, and prints the local path.
// Used by tests/py/test_hub.py against a fake hub on 127.0.0.1.
#include <cstdio>

#include "io/model_path.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kiln_hub_fetch SPEC\n");
    return 2;
  }
  auto path = kiln::io::ResolveModelPath(argv[1]);
  if (!path.ok()) {
    std::fprintf(stderr, "error: %s\n", path.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", path->c_str());
  return 0;
}
