// Packed weight layouts (kernels/pack.h): packing, unpacking, and the scalar arithmetic every
// table's packed gemm must equal bit for bit.
#include "kernels/pack.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "tensor/fp16.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels {
namespace {

// One field of a (super-)block in the packed layout of a group: `halfs` f16 values (2 bytes
// per row, 32 bytes per group) or `chunks` chunks (4 bytes per row, 64 bytes per group), taken
// from the original block at byte `from` (chunk c of the field: bytes from + 4c … from + 4c + 3).
struct Field {
  int from;
  int chunks;  // 0: one f16 per row
};

struct Layout {
  DType orig, packed;
  int64_t block_elems;
  size_t block_bytes;
  int n_fields;
  Field fields[52];
};

// Q6_K: 16 d, 4 chunks of sub-scales, then for h < 2, L < 8: ql chunks 16h + L and
// 16h + 8 + L and qh chunk 8h + L (pack.h), so the kernel reads the block in one pass.
constexpr Layout MakeQ6_KLayout() {
  Layout l{DType::kQ6_K, DType::kQ6_K_R16, 256, 210, 0, {}};
  l.fields[l.n_fields++] = {208, 0};
  l.fields[l.n_fields++] = {192, 4};
  for (int h = 0; h < 2; ++h) {
    for (int L = 0; L < 8; ++L) {
      l.fields[l.n_fields++] = {4 * (16 * h + L), 1};
      l.fields[l.n_fields++] = {4 * (16 * h + 8 + L), 1};
      l.fields[l.n_fields++] = {128 + 4 * (8 * h + L), 1};
    }
  }
  return l;
}

// Field order is the packed order inside a group's block (pack.h).
constexpr Layout kLayouts[] = {
    {DType::kQ4_0, DType::kQ4_0_R16, 32, 18, 2, {{0, 0}, {2, 4}}},
    {DType::kQ8_0, DType::kQ8_0_R16, 32, 34, 2, {{0, 0}, {2, 8}}},
    {DType::kQ5_0, DType::kQ5_0_R16, 32, 22, 3, {{0, 0}, {6, 4}, {2, 1}}},
    {DType::kQ4_K, DType::kQ4_K_R16, 256, 144, 4, {{0, 0}, {2, 0}, {4, 3}, {16, 32}}},
    MakeQ6_KLayout(),
};

const Layout* FindLayout(DType t) {
  for (const Layout& l : kLayouts) {
    if (l.orig == t || l.packed == t) return &l;
  }
  return nullptr;
}

// Q5_0's high-bit word: qh bit 4c + i (element 4c + i) ↔ bit c + 8i of the packed word.
uint32_t Q5HighToPacked(uint32_t qh) {
  uint32_t h = 0;
  for (int c = 0; c < 8; ++c) {
    for (int i = 0; i < 4; ++i) h |= ((qh >> (4 * c + i)) & 1u) << (c + 8 * i);
  }
  return h;
}
uint32_t Q5HighFromPacked(uint32_t h) {
  uint32_t qh = 0;
  for (int c = 0; c < 8; ++c) {
    for (int i = 0; i < 4; ++i) qh |= ((h >> (c + 8 * i)) & 1u) << (4 * c + i);
  }
  return qh;
}

// The byte changes between a row's original block and what the packed fields hold (pack.h):
// Q8_0 quants offset by 128, Q5_0's high bits rearranged. `to_packed` picks the direction.
void Transform(DType orig, uint8_t* block, bool to_packed) {
  if (orig == DType::kQ8_0) {
    for (int i = 2; i < 34; ++i) block[i] ^= 0x80;
  } else if (orig == DType::kQ5_0) {
    uint32_t w;
    std::memcpy(&w, block + 2, 4);
    w = to_packed ? Q5HighToPacked(w) : Q5HighFromPacked(w);
    std::memcpy(block + 2, &w, 4);
  }
}

// Copies one row's block between the original layout (`orig`, already transformed) and the
// packed block of its group (`group_block`), row r of the group.
void MoveBlock(const Layout& l, uint8_t* orig, uint8_t* group_block, int64_t r, bool pack) {
  uint8_t* at = group_block;
  for (int f = 0; f < l.n_fields; ++f) {
    const Field& fd = l.fields[f];
    if (fd.chunks == 0) {
      uint8_t* p = at + 2 * r;
      if (pack) std::memcpy(p, orig + fd.from, 2); else std::memcpy(orig + fd.from, p, 2);
      at += 2 * kPackRows;
      continue;
    }
    for (int c = 0; c < fd.chunks; ++c) {
      uint8_t* p = at + 64 * c + 4 * r;
      uint8_t* o = orig + fd.from + 4 * c;
      if (pack) std::memcpy(p, o, 4); else std::memcpy(o, p, 4);
    }
    at += 64 * fd.chunks;
  }
}

constexpr size_t kMaxBlockBytes = 210;

}  // namespace

std::optional<DType> PackedTypeOf(DType t) {
  const Layout* l = FindLayout(t);
  if (l == nullptr || l->orig != t) return std::nullopt;
  return l->packed;
}

DType UnpackedTypeOf(DType t) {
  const Layout* l = FindLayout(t);
  return l != nullptr && l->packed == t ? l->orig : t;
}

bool IsPacked(DType t) {
  const Layout* l = FindLayout(t);
  return l != nullptr && l->packed == t;
}

void PackRows(DType t, const void* src, size_t row_bytes, int64_t rows, int64_t k, void* dst) {
  KILN_CHECK(PackedTypeOf(t).has_value()) << DTypeName(t) << " has no packed layout";
  const Layout& l = *FindLayout(t);
  KILN_CHECK(rows % kPackRows == 0 && k % l.block_elems == 0) << rows << " x " << k;
  const int64_t nb = k / l.block_elems;
  KILN_CHECK(static_cast<size_t>(nb) * l.block_bytes == row_bytes) << row_bytes;
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  const size_t group_block = l.block_bytes * kPackRows;
  for (int64_t g = 0; g < rows / kPackRows; ++g) {
    uint8_t* group = d + static_cast<size_t>(g) * kPackRows * row_bytes;
    for (int64_t r = 0; r < kPackRows; ++r) {
      const uint8_t* row = s + static_cast<size_t>(g * kPackRows + r) * row_bytes;
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t block[kMaxBlockBytes];
        std::memcpy(block, row + b * l.block_bytes, l.block_bytes);
        Transform(l.orig, block, /*to_packed=*/true);
        MoveBlock(l, block, group + b * group_block, r, /*pack=*/true);
      }
    }
  }
}

void UnpackRow(DType packed, const void* data, size_t row_bytes, int64_t r, int64_t k,
               void* dst) {
  KILN_CHECK(IsPacked(packed)) << DTypeName(packed);
  const Layout& l = *FindLayout(packed);
  KILN_CHECK(k % l.block_elems == 0) << DTypeName(packed) << " " << k;
  const int64_t nb = k / l.block_elems;
  const uint8_t* group = static_cast<const uint8_t*>(data) +
                         static_cast<size_t>(r / kPackRows) * kPackRows * row_bytes;
  const size_t group_block = l.block_bytes * kPackRows;
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t block[kMaxBlockBytes];
    // MoveBlock only reads the group when unpacking.
    MoveBlock(l, block, const_cast<uint8_t*>(group + b * group_block), r % kPackRows,
              /*pack=*/false);
    Transform(l.orig, block, /*to_packed=*/false);
    std::memcpy(out + b * l.block_bytes, block, l.block_bytes);
  }
}

namespace ref {
namespace {

template <typename B>
B LoadAt(const void* base, int64_t i) {
  B b;
  std::memcpy(&b, static_cast<const uint8_t*>(base) + i * sizeof(B), sizeof(B));
  return b;
}

// Q4_0/Q5_0/Q8_0 · Q8_0: acc = fma(float(isum_b), d_w·d_a, acc) per block of 32.
float DotQ8_0Order(DType t, const void* w, const void* a, int64_t k) {
  float acc = 0.0f;
  for (int64_t b = 0; b < k / 32; ++b) {
    const auto ab = LoadAt<BlockQ8_0>(a, b);
    int32_t isum = 0;
    uint16_t d;
    if (t == DType::kQ4_0) {
      const auto wb = LoadAt<BlockQ4_0>(w, b);
      for (int e = 0; e < 16; ++e) {
        isum += ((wb.qs[e] & 0x0F) - 8) * ab.qs[e];
        isum += ((wb.qs[e] >> 4) - 8) * ab.qs[16 + e];
      }
      d = wb.d;
    } else if (t == DType::kQ5_0) {
      const auto wb = LoadAt<BlockQ5_0>(w, b);
      uint32_t qh;
      std::memcpy(&qh, wb.qh, 4);
      for (int e = 0; e < 16; ++e) {
        const int lo = (wb.qs[e] & 0x0F) | static_cast<int>((qh >> e) & 1) << 4;
        const int hi = (wb.qs[e] >> 4) | static_cast<int>((qh >> (16 + e)) & 1) << 4;
        isum += (lo - 16) * ab.qs[e] + (hi - 16) * ab.qs[16 + e];
      }
      d = wb.d;
    } else {
      const auto wb = LoadAt<BlockQ8_0>(w, b);
      for (int e = 0; e < 32; ++e) isum += wb.qs[e] * ab.qs[e];
      d = wb.d;
    }
    const float scale = Fp16ToFp32(d) * Fp16ToFp32(ab.d);
    acc = std::fma(static_cast<float>(isum), scale, acc);
  }
  return acc;
}

// Q4_K · Q8_K (pack.h): per super-block isum = Σ_j sc_j·dot_j, msum = Σ_j m_j·bsum_j;
// acc = fma(float(isum), d_w·d_a, acc); acc = fma(float(−msum), dmin_w·d_a, acc).
float DotQ4_KOrder(const void* w, const void* a, int64_t k) {
  float acc = 0.0f;
  for (int64_t b = 0; b < k / 256; ++b) {
    const auto wb = LoadAt<BlockQ4_K>(w, b);
    const auto ab = LoadAt<BlockQ8_K>(a, b);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      const uint8_t* q = wb.scales;
      if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
      } else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
      }
      // Sub-block j: elements 32j…32j+31, nibbles of qs[32(j/2) + l], low for even j.
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = wb.qs[32 * (j / 2) + l];
        const int q4 = j % 2 ? byte >> 4 : byte & 0x0F;
        dot += q4 * ab.qs[32 * j + l];
      }
      isum += sc * dot;
      msum += m * (ab.bsums[2 * j] + ab.bsums[2 * j + 1]);
    }
    acc = std::fma(static_cast<float>(isum), Fp16ToFp32(wb.d) * ab.d, acc);
    acc = std::fma(static_cast<float>(-msum), Fp16ToFp32(wb.dmin) * ab.d, acc);
  }
  return acc;
}

// Q6_K · Q8_K (pack.h): per super-block isum = Σ_j sc_j·dot_j over the 16 sub-blocks of 16;
// acc = fma(float(isum), d_w·d_a, acc).
float DotQ6_KOrder(const void* w, const void* a, int64_t k) {
  float acc = 0.0f;
  for (int64_t b = 0; b < k / 256; ++b) {
    const auto wb = LoadAt<BlockQ6_K>(w, b);
    const auto ab = LoadAt<BlockQ8_K>(a, b);
    int32_t dot[16] = {};
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t* ql = wb.ql + 64 * h;
        const uint8_t qh = wb.qh[32 * h + l];
        const int q[4] = {(ql[l] & 0xF) | ((qh >> 0) & 3) << 4,
                          (ql[l + 32] & 0xF) | ((qh >> 2) & 3) << 4,
                          (ql[l] >> 4) | ((qh >> 4) & 3) << 4,
                          (ql[l + 32] >> 4) | ((qh >> 6) & 3) << 4};
        for (int s = 0; s < 4; ++s) {
          const int e = 128 * h + 32 * s + l;
          dot[e / 16] += (q[s] - 32) * ab.qs[e];
        }
      }
    }
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) isum += wb.scales[j] * dot[j];
    acc = std::fma(static_cast<float>(isum), Fp16ToFp32(wb.d) * ab.d, acc);
  }
  return acc;
}

}  // namespace

float VecDotPackedOrder(DType packed, const void* w_row, const void* a_row, int64_t k) {
  KILN_CHECK(IsPacked(packed)) << DTypeName(packed);
  const DType t = UnpackedTypeOf(packed);
  if (t == DType::kQ4_K) return DotQ4_KOrder(w_row, a_row, k);
  if (t == DType::kQ6_K) return DotQ6_KOrder(w_row, a_row, k);
  return DotQ8_0Order(t, w_row, a_row, k);
}

namespace {

void GemmPacked(DType packed, const void* w, size_t w_row_bytes, const void* a,
                size_t a_row_bytes, int64_t n_tokens, int64_t k, float* out, int64_t out_stride,
                int64_t row_begin, int64_t row_end) {
  KILN_CHECK(row_begin % kPackRows == 0 && row_end % kPackRows == 0)
      << row_begin << ".." << row_end;
  std::vector<uint8_t> row(w_row_bytes);
  for (int64_t r = row_begin; r < row_end; ++r) {
    UnpackRow(packed, w, w_row_bytes, r, k, row.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      out[t * out_stride + r] = VecDotPackedOrder(
          packed, row.data(), static_cast<const uint8_t*>(a) + t * a_row_bytes, k);
    }
  }
}

}  // namespace

#define KILN_REF_PACKED_GEMM(T)                                                              \
  void Gemm##T##R16(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,    \
                    int64_t n_tokens, int64_t k, float* out, int64_t out_stride,             \
                    int64_t row_begin, int64_t row_end) {                                    \
    GemmPacked(DType::k##T##_R16, w, w_row_bytes, a, a_row_bytes, n_tokens, k, out,          \
               out_stride, row_begin, row_end);                                              \
  }
KILN_REF_PACKED_GEMM(Q4_0)
KILN_REF_PACKED_GEMM(Q8_0)
KILN_REF_PACKED_GEMM(Q5_0)
KILN_REF_PACKED_GEMM(Q4_K)
KILN_REF_PACKED_GEMM(Q6_K)
#undef KILN_REF_PACKED_GEMM

}  // namespace ref
}  // namespace kiln::kernels
