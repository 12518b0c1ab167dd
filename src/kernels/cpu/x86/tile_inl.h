// The loop structure shared by vec_dot and gemm for every block kernel K, so both run the
// very same arithmetic per (row, token): gemm results are bit-identical to vec_dot's.
//
// A block kernel K provides:
//   kBlockElems, kWBlockBytes, kABlockBytes     block geometry (weight / activation)
//   struct W; static void Load(const uint8_t* w_block, W& w)   decoded once per weight block
//   struct Acc; static void Init(Acc&)
//   template <int kParity> static void Add(const W&, <activation block>, Acc&)
//                                               kParity = block index & 1 (two chains)
//   static float Finish(const Acc&)
// The activation block is either the raw pointer (const uint8_t*), or, when K declares
//   struct A; static void LoadA(const uint8_t* a_block, A& a)
// a decoded form computed once per (token, block) and shared by every weight row of a tile.
// Kernels whose block spans several storage units (the float kernels: 16 or 32 elements of
// one element each) set kPadTail and kTailUnitElems / kTailUnitWBytes / kTailUnitABytes: a
// partial last block is copied into zero-filled buffers and added like a full one (zero
// elements add exactly zero).
//
// A tile is kRows weight rows × kTokens activation rows: each weight block is decoded once
// for the tile's tokens and each activation block once for its rows, while every (row, token)
// pair keeps its own accumulator and runs the same block sequence as vec_dot (DotTile<K,1,1>).
// Several rows per tile also give a matrix × vector independent accumulation chains, so its
// speed is not bound by one chain's FMA latency.
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace kiln::kernels::x86 {
namespace {

// The activation block as K consumes it (see the header comment).
template <class K>
struct TokenBlock {
  using A = const uint8_t*;
  KILN_X86_INLINE static void Load(const uint8_t* p, A& a) { a = p; }
};
template <class K>
  requires requires { typename K::A; }
struct TokenBlock<K> {
  using A = typename K::A;
  KILN_X86_INLINE static void Load(const uint8_t* p, A& a) { K::LoadA(p, a); }
};

// Where a tile gets token t's activation block b (decoded form TokenBlock<K>::A):
// RawTokens decodes it from token t's row at a[t]; DecodedTokens reads it from pre[t][b],
// decoded once per gemm row chunk (the same values, computed once instead of once per tile).
template <class K>
struct RawTokens {
  const uint8_t* const* a;
  KILN_X86_INLINE void Get(int t, int64_t b, typename TokenBlock<K>::A& ab) const {
    TokenBlock<K>::Load(a[t] + b * K::kABlockBytes, ab);
  }
};
template <class K>
struct DecodedTokens {
  const typename K::A* const* pre;
  KILN_X86_INLINE void Get(int t, int64_t b, typename K::A& ab) const { ab = pre[t][b]; }
};

// Bytes ahead of a matrix × vector tile's position that TileStep prefetches (see below).
constexpr int64_t kPrefetchAhead = 8192;

// Block b of every (row, token) pair of the tile. kPrefetch (matrix × vector): the tile reads
// its rows in lock step, which this machine's hardware prefetcher follows badly (several
// interleaved streams a row apart read at a third of the one-stream DRAM rate), so the
// memory the tile reaches kPrefetchAhead bytes later is prefetched as one linear stream: the
// tile's rows are contiguous, and a step advances kRows weight blocks through them.
template <class K, int kRows, int kTokens, int kParity, bool kPrefetch, class Src>
KILN_X86_INLINE void TileStep(const uint8_t* w, int64_t w_stride, const Src& src, int64_t b,
                              typename K::Acc (&acc)[kRows][kTokens]) {
  if constexpr (kPrefetch) {
    // Integer arithmetic: the address may lie past the matrix (prefetches never fault).
    const char* p = reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(w) + kPrefetchAhead +
                                                  b * kRows * K::kWBlockBytes);
    for (int64_t off = 0; off < kRows * K::kWBlockBytes + 63; off += 64) {
      _mm_prefetch(p + off, _MM_HINT_T0);
    }
  }
  typename K::W wb[kRows];
  for (int r = 0; r < kRows; ++r) K::Load(w + r * w_stride + b * K::kWBlockBytes, wb[r]);
  for (int t = 0; t < kTokens; ++t) {
    typename TokenBlock<K>::A ab;
    src.Get(t, b, ab);
    for (int r = 0; r < kRows; ++r) K::template Add<kParity>(wb[r], ab, acc[r][t]);
  }
}

// out[r * kTokens + t] = dot(row r at w + r * w_stride, token t of src), k elements.
template <class K, int kRows, int kTokens, bool kPrefetch = false, class Src>
inline void DotTile(const uint8_t* w, int64_t w_stride, const Src& src, int64_t k, float* out) {
  typename K::Acc acc[kRows][kTokens];
  for (auto& row : acc) {
    for (auto& x : row) K::Init(x);
  }
  const int64_t n_full = k / K::kBlockElems;
  int64_t b = 0;
  for (; b + 2 <= n_full; b += 2) {
    TileStep<K, kRows, kTokens, 0, kPrefetch>(w, w_stride, src, b, acc);
    TileStep<K, kRows, kTokens, 1, kPrefetch>(w, w_stride, src, b + 1, acc);
  }
  if (b < n_full) {
    TileStep<K, kRows, kTokens, 0, kPrefetch>(w, w_stride, src, b, acc);
    ++b;
  }
  if constexpr (K::kPadTail) {
    const int64_t rem = k - n_full * K::kBlockElems;
    if (rem > 0) {
      alignas(64) uint8_t w_pad[kRows][K::kWBlockBytes] = {};
      alignas(64) uint8_t a_pad[kTokens][K::kABlockBytes] = {};
      const uint8_t* a_ptr[kTokens];
      const int64_t n_units = rem / K::kTailUnitElems;
      for (int r = 0; r < kRows; ++r) {
        std::memcpy(w_pad[r], w + r * w_stride + b * K::kWBlockBytes, n_units * K::kTailUnitWBytes);
      }
      for (int t = 0; t < kTokens; ++t) {
        std::memcpy(a_pad[t], src.a[t] + b * K::kABlockBytes, n_units * K::kTailUnitABytes);
        a_ptr[t] = a_pad[t];
      }
      const RawTokens<K> pad{a_ptr};
      // Same parity as the full-block loop would use, so the chains match vec_dot's.
      if (b % 2 == 0) {
        TileStep<K, kRows, kTokens, 0, false>(w_pad[0], K::kWBlockBytes, pad, 0, acc);
      } else {
        TileStep<K, kRows, kTokens, 1, false>(w_pad[0], K::kWBlockBytes, pad, 0, acc);
      }
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int t = 0; t < kTokens; ++t) out[r * kTokens + t] = K::Finish(acc[r][t]);
  }
}

template <class K>
float VecDot(const void* w, const void* a, int64_t k) {
  const uint8_t* a_rows[1] = {static_cast<const uint8_t*>(a)};
  float out;
  DotTile<K, 1, 1>(static_cast<const uint8_t*>(w), 0, RawTokens<K>{a_rows}, k, &out);
  return out;
}

// Runs DotTile<K, kRows, n> for a runtime n in [1, kMax].
template <class K, int kRows, int kMax, class Src>
inline void DotTileN(int n, const uint8_t* w, int64_t w_stride, const Src& src, int64_t k,
                     float* out) {
  if constexpr (kMax > 1) {
    if (n < kMax) return DotTileN<K, kRows, kMax - 1>(n, w, w_stride, src, k, out);
  }
  DotTile<K, kRows, kMax>(w, w_stride, src, k, out);
}

// Token tile t0's activation blocks, decoded: pre[t][b] for n_tile tokens (kernels with A).
template <class K>
const typename K::A* DecodeTokens(const uint8_t* a, size_t a_row_bytes, int64_t t0, int n_tile,
                                  int64_t n_blocks, std::vector<typename K::A>& buf) {
  const size_t need = static_cast<size_t>(n_tile * n_blocks);
  if (buf.size() < need) buf.resize(need);
  for (int t = 0; t < n_tile; ++t) {
    const uint8_t* row = a + (t0 + t) * a_row_bytes;
    for (int64_t b = 0; b < n_blocks; ++b) {
      K::LoadA(row + b * K::kABlockBytes, buf[t * n_blocks + b]);
    }
  }
  return buf.data();
}

// GemmFn (kernel_table.h) with tiles of kTileRows rows × kTileTokens tokens; a single token
// (matrix × vector) runs tiles of kVecRows rows. Rows are taken in chunks small enough to
// stay in L1/L2 while every token tile passes over them.
template <class K, int kTileRows, int kTileTokens, int kVecRows>
void Gemm(const void* vw, size_t w_row_bytes, const void* va, size_t a_row_bytes,
          int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
          int64_t row_end) {
  const uint8_t* w = static_cast<const uint8_t*>(vw);
  const uint8_t* a = static_cast<const uint8_t*>(va);
  const int64_t ws = static_cast<int64_t>(w_row_bytes);
  if (n_tokens == 1) {
    const uint8_t* a_rows[1] = {a};
    const RawTokens<K> src{a_rows};
    int64_t r = row_begin;
    for (; r + kVecRows <= row_end; r += kVecRows) {
      DotTile<K, kVecRows, 1, true>(w + r * ws, ws, src, k, out + r);
    }
    for (; r < row_end; ++r) DotTile<K, 1, 1>(w + r * ws, ws, src, k, out + r);
    return;
  }
  // Row chunks of >= 16 rows (~32 KiB of weights, from L1/L2) for every token tile; kernels
  // with a decoded activation form decode each token tile once per chunk.
  constexpr int64_t kChunkBytes = 32 * 1024;
  int64_t rows_per_chunk = kChunkBytes / (ws > 0 ? ws : 1);
  if (rows_per_chunk < 16) rows_per_chunk = 16;
  rows_per_chunk = (rows_per_chunk + kTileRows - 1) / kTileRows * kTileRows;
  constexpr bool kDecode = requires { typename K::A; };
  const int64_t n_blocks = k / K::kBlockElems;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += rows_per_chunk) {
    const int64_t r1 = r0 + rows_per_chunk < row_end ? r0 + rows_per_chunk : row_end;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
      const int n_tile =
          static_cast<int>(n_tokens - t0 < kTileTokens ? n_tokens - t0 : kTileTokens);
      auto run = [&](const auto& src) {
        float res[kTileRows * kTileTokens];
        int64_t r = r0;
        for (; r + kTileRows <= r1; r += kTileRows) {
          DotTileN<K, kTileRows, kTileTokens>(n_tile, w + r * ws, ws, src, k, res);
          for (int i = 0; i < kTileRows; ++i) {
            for (int t = 0; t < n_tile; ++t) {
              out[(t0 + t) * out_stride + r + i] = res[i * n_tile + t];
            }
          }
        }
        for (; r < r1; ++r) {
          DotTileN<K, 1, kTileTokens>(n_tile, w + r * ws, ws, src, k, res);
          for (int t = 0; t < n_tile; ++t) out[(t0 + t) * out_stride + r] = res[t];
        }
      };
      if constexpr (kDecode) {
        static_assert(!K::kPadTail, "decoded activations need whole blocks");
        thread_local std::vector<typename K::A> buf;
        const typename K::A* base = DecodeTokens<K>(a, a_row_bytes, t0, n_tile, n_blocks, buf);
        const typename K::A* pre[kTileTokens];
        for (int t = 0; t < n_tile; ++t) pre[t] = base + t * n_blocks;
        run(DecodedTokens<K>{pre});
      } else {
        const uint8_t* a_rows[kTileTokens];
        for (int t = 0; t < n_tile; ++t) a_rows[t] = a + (t0 + t) * a_row_bytes;
        run(RawTokens<K>{a_rows});
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kernels::x86
