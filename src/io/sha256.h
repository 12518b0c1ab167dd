// SHA-256 (FIPS 180-4), streaming: verifies downloaded model files against the hub's checksums.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace kiln::io {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::array<uint8_t, 32> Final();
  std::string HexFinal();  // lowercase hex of Final()

 private:
  void Block(const uint8_t* p);

  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string Sha256Hex(std::string_view data);
// Hashes a whole file (streamed, not loaded); NotFound / InvalidArgument on I/O errors.
StatusOr<std::string> Sha256FileHex(const std::string& path);

}  // namespace kiln::io
