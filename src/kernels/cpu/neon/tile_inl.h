// The loop structure shared by vec_dot and gemm for every AArch64 block kernel K, so both run
// the very same arithmetic per (row, token): gemm results are bit-identical to vec_dot's
// (batch invariance). A block kernel K provides:
//   kBlockElems, kWBlockBytes, kABlockBytes     block geometry (weight / activation)
//   struct W; static void Load(const uint8_t* w_block, W& w)   decoded once per weight block
//   struct Acc; static void Init(Acc&); static void Add(const W&, const uint8_t* a_block, Acc&)
//   static float Finish(const Acc&)
//   kPadTail, kElemBytes   float kernels: a partial last block is copied into zero-filled
//                          buffers and added like a full one (zeros add exactly zero)
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kiln::kernels::arm {
namespace {

template <class K, int kTokens>
inline void DotTile(const uint8_t* w, const uint8_t* const* a, int64_t k, float* out) {
  typename K::Acc acc[kTokens];
  for (int t = 0; t < kTokens; ++t) K::Init(acc[t]);
  const int64_t n_full = k / K::kBlockElems;
  typename K::W wb;
  int64_t b = 0;
  for (; b < n_full; ++b) {
    K::Load(w + b * K::kWBlockBytes, wb);
    for (int t = 0; t < kTokens; ++t) K::Add(wb, a[t] + b * K::kABlockBytes, acc[t]);
  }
  if constexpr (K::kPadTail) {
    const int64_t rem = k - n_full * K::kBlockElems;
    if (rem > 0) {
      alignas(16) uint8_t w_pad[K::kWBlockBytes] = {};
      alignas(16) uint8_t a_pad[K::kABlockBytes] = {};
      std::memcpy(w_pad, w + b * K::kWBlockBytes, rem * K::kElemBytes);
      K::Load(w_pad, wb);
      for (int t = 0; t < kTokens; ++t) {
        std::memcpy(a_pad, a[t] + b * K::kABlockBytes, rem * K::kElemBytes);
        K::Add(wb, a_pad, acc[t]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t) out[t] = K::Finish(acc[t]);
}

template <class K>
float VecDot(const void* w, const void* a, int64_t k) {
  const uint8_t* a_rows[1] = {static_cast<const uint8_t*>(a)};
  float out;
  DotTile<K, 1>(static_cast<const uint8_t*>(w), a_rows, k, &out);
  return out;
}

// Runs DotTile<K, n> for a runtime n in [1, kMax].
template <class K, int kMax>
inline void DotTileN(int n, const uint8_t* w, const uint8_t* const* a, int64_t k, float* out) {
  if constexpr (kMax > 1) {
    if (n < kMax) return DotTileN<K, kMax - 1>(n, w, a, k, out);
  }
  DotTile<K, kMax>(w, a, k, out);
}

// GemmFn (kernel_table.h): rows in chunks that stay in L1/L2 while every token tile passes
// over them; within a chunk each weight block is decoded once per tile of kTileTokens.
template <class K, int kTileTokens>
void Gemm(const void* vw, size_t w_row_bytes, const void* va, size_t a_row_bytes,
          int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
          int64_t row_end) {
  const uint8_t* w = static_cast<const uint8_t*>(vw);
  const uint8_t* a = static_cast<const uint8_t*>(va);
  constexpr int64_t kChunkBytes = 16 * 1024;
  int64_t rows_per_chunk = kChunkBytes / static_cast<int64_t>(w_row_bytes > 0 ? w_row_bytes : 1);
  if (rows_per_chunk < 1) rows_per_chunk = 1;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += rows_per_chunk) {
    const int64_t r1 = r0 + rows_per_chunk < row_end ? r0 + rows_per_chunk : row_end;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
      const int n_tile = static_cast<int>(n_tokens - t0 < kTileTokens ? n_tokens - t0 : kTileTokens);
      const uint8_t* a_rows[kTileTokens];
      for (int t = 0; t < n_tile; ++t) a_rows[t] = a + (t0 + t) * a_row_bytes;
      for (int64_t r = r0; r < r1; ++r) {
        float res[kTileTokens];
        DotTileN<K, kTileTokens>(n_tile, w + r * w_row_bytes, a_rows, k, res);
        for (int t = 0; t < n_tile; ++t) out[(t0 + t) * out_stride + r] = res[t];
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kernels::arm
