// kiln_gguf_dump FILE.gguf: prints what kiln parsed as one JSON object, for comparison with the
// gguf Python package (tests/py/test_io_gguf.py). Strings are hex-encoded so any bytes compare
// exactly. Exit code 1 and the error on stderr if the file does not open.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"

namespace {

using kiln::io::MetaValue;
using nlohmann::json;

std::string Hex(const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

json Value(const MetaValue& v) {
  using Type = MetaValue::Type;
  switch (v.type) {
    case Type::kString: return Hex(v.s);
    case Type::kBool: return v.b;
    case Type::kFloat32: case Type::kFloat64: return v.f;
    case Type::kArray: {
      json a = json::array();
      for (const MetaValue& e : v.array) a.push_back(Value(e));
      return a;
    }
    case Type::kUint8: case Type::kUint16: case Type::kUint32: case Type::kUint64: return v.u;
    default: return v.i;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kiln_gguf_dump FILE.gguf\n");
    return 2;
  }
  auto g = kiln::io::GgufFile::Open(argv[1]);
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", g.status().ToString().c_str());
    return 1;
  }
  const kiln::io::GgufFile& f = **g;
  json out;
  out["version"] = f.version();
  out["alignment"] = f.alignment();
  out["data_offset"] = f.data_offset();
  json meta = json::array();
  for (const std::string& key : f.key_order()) {
    const MetaValue& v = *f.FindMeta(key);
    json e = {{"key", key}, {"type", static_cast<uint32_t>(v.type)}, {"value", Value(v)}};
    if (v.type == MetaValue::Type::kArray) e["elem_type"] = static_cast<uint32_t>(v.elem_type);
    meta.push_back(e);
  }
  out["metadata"] = meta;
  json tensors = json::array();
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const kiln::io::TensorInfo& t = f.tensors()[i];
    tensors.push_back({{"name", t.name},
                       {"type", static_cast<uint32_t>(t.dtype)},
                       {"shape", t.shape},
                       {"offset", f.RelativeOffset(i)},
                       {"n_bytes", t.n_bytes}});
  }
  out["tensors"] = tensors;
  std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}
