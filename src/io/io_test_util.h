// Test helpers for io tests: a temp folder per test and a GGUF writer that can also write
// deliberately broken files (the corruption tests build their inputs with it).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace kiln::io::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kiln_io_test_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, std::string_view bytes) const {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
    return p;
  }

 private:
  std::string path_;
};

inline bool Contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// Little-endian byte buffer.
struct Bytes {
  std::string buf;
  template <typename T>
  Bytes& Pod(T v) {
    buf.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  Bytes& Str(std::string_view s) {
    Pod<uint64_t>(s.size());
    buf.append(s);
    return *this;
  }
};

// GGUF value type ids.
enum : uint32_t {
  kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kStr, kArr, kU64, kI64, kF64,
};

class GgufWriter {
 public:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::optional<uint64_t> offset;  // default: next aligned free offset
    std::string data;
  };

  uint32_t version = 3;
  uint32_t magic = 0x46554747;
  size_t alignment = 32;  // placement only; add general.alignment yourself to change it
  std::optional<uint64_t> n_kv_override, n_tensors_override;

  // Raw key/value: `value` is the encoded value after the type id.
  GgufWriter& Kv(std::string_view key, uint32_t type, const Bytes& value) {
    kv_.Str(key).Pod(type);
    kv_.buf += value.buf;
    ++n_kv_;
    return *this;
  }
  template <typename T>
  GgufWriter& Scalar(std::string_view key, uint32_t type, T v) {
    return Kv(key, type, Bytes().Pod(v));
  }
  GgufWriter& String(std::string_view key, std::string_view v) {
    return Kv(key, kStr, Bytes().Str(v));
  }
  GgufWriter& AddTensor(Tensor t) {
    tensors_.push_back(std::move(t));
    return *this;
  }

  std::string Build() const {
    Bytes b;
    b.Pod(magic).Pod(version);
    b.Pod<uint64_t>(n_tensors_override.value_or(tensors_.size()));
    b.Pod<uint64_t>(n_kv_override.value_or(n_kv_));
    b.buf += kv_.buf;
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const Tensor& t : tensors_) {
      uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      next = Align(std::max(next, off + t.data.size()));
      b.Str(t.name).Pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) b.Pod(d);
      b.Pod(t.type).Pod(off);
    }
    b.buf.resize(Align(b.buf.size()), '\0');
    size_t data_start = b.buf.size();
    size_t data_end = data_start;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      data_end = std::max<size_t>(data_end, data_start + offsets[i] + tensors_[i].data.size());
    }
    b.buf.resize(data_end, '\0');
    for (size_t i = 0; i < tensors_.size(); ++i) {
      std::memcpy(b.buf.data() + data_start + offsets[i], tensors_[i].data.data(),
                  tensors_[i].data.size());
    }
    return b.buf;
  }

 private:
  uint64_t Align(uint64_t x) const { return (x + alignment - 1) / alignment * alignment; }
  Bytes kv_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

inline std::string Filled(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 13);
  return s;
}

}  // namespace kiln::io::testing
