// The packed weight layouts (kernels/pack.h) on every kernel table that has a packed gemm:
// PackRows/UnpackRow round trip, and gemm bit for bit equal to ref::VecDotPackedOrder on the
// original (unpacked) rows and to ref's packed gemm, over row ranges, block counts (odd ones
// too), token counts (every tile remainder, the 1-token decode path), misaligned buffers and
// extreme quants/scales; untouched outside its row range; a token's value independent of the
// batch it is in.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/pack.h"
#include "tensor/dtype.h"

namespace kiln::kernels {
namespace {

constexpr int64_t kQK = 32;

struct PackCase {
  DType orig, packed;
  size_t block_bytes;  // original block bytes
};
constexpr PackCase kCases[] = {{DType::kQ4_0, DType::kQ4_0_R16, 18},
                               {DType::kQ8_0, DType::kQ8_0_R16, 34}};

// Buffer whose data starts `offset` bytes past a 64-byte boundary, `fill` elsewhere.
class Misaligned {
 public:
  Misaligned(size_t n_bytes, int offset, uint8_t fill = 0xA5) : storage_(n_bytes + 128, fill) {
    const auto base = reinterpret_cast<uintptr_t>(storage_.data());
    shift_ = static_cast<size_t>((64 - base % 64) % 64) + static_cast<size_t>(offset);
  }
  uint8_t* data() { return storage_.data() + shift_; }

 private:
  std::vector<uint8_t> storage_;
  size_t shift_ = 0;
};

// A random f16 scale: mostly ordinary values, also the largest finite ones, subnormals,
// zero, either sign.
uint16_t RandomScale(std::mt19937& rng) {
  const uint16_t sign = (rng() & 1) ? 0x8000 : 0;
  switch (rng() % 8) {
    case 0: return sign | static_cast<uint16_t>(1 + rng() % 0x3FF);     // subnormal
    case 1: return sign | static_cast<uint16_t>(0x7800 + rng() % 0x400);  // 32768 … 65504
    case 2: return sign;                                                  // ±0
    default: return sign | static_cast<uint16_t>(0x1C00 + rng() % 0x2400);  // ~0.004 … 2
  }
}

// `n` quant bytes of one block: random, or all at one extreme of the type's range.
void RandomQuants(std::mt19937& rng, uint8_t* q, int n, uint8_t lo, uint8_t hi, bool signed8) {
  const int mode = static_cast<int>(rng() % 8);
  for (int i = 0; i < n; ++i) {
    if (mode == 0) {
      q[i] = lo;
    } else if (mode == 1) {
      q[i] = hi;
    } else if (signed8) {  // int8 in [int8(lo), int8(hi)]
      const int l = static_cast<int8_t>(lo), h = static_cast<int8_t>(hi);
      q[i] = static_cast<uint8_t>(static_cast<int8_t>(l + static_cast<int>(rng() % (h - l + 1))));
    } else {
      q[i] = static_cast<uint8_t>(lo + rng() % (hi - lo + 1));
    }
  }
}

// `rows` rows of the original type c.orig (Q4_0: every nibble 0…15; Q8_0: −128…127).
std::vector<uint8_t> RandomWeights(const PackCase& c, int64_t rows, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t nb = k / kQK;
  std::vector<uint8_t> w(static_cast<size_t>(rows * nb) * c.block_bytes);
  for (int64_t i = 0; i < rows * nb; ++i) {
    uint8_t* blk = w.data() + i * c.block_bytes;
    const uint16_t d = RandomScale(rng);
    std::memcpy(blk, &d, 2);
    if (c.orig == DType::kQ4_0) {
      RandomQuants(rng, blk + 2, 16, 0x00, 0xFF, false);
    } else {
      RandomQuants(rng, blk + 2, 32, 0x80, 0x7F, true);
    }
  }
  return w;
}

// Q8_0 activation rows as quantize_dot makes them: quants in [−127, 127].
std::vector<uint8_t> RandomActivations(int64_t n_tokens, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t nb = k / kQK;
  std::vector<uint8_t> a(static_cast<size_t>(n_tokens * nb) * 34);
  for (int64_t i = 0; i < n_tokens * nb; ++i) {
    uint8_t* blk = a.data() + i * 34;
    const uint16_t d = RandomScale(rng);
    std::memcpy(blk, &d, 2);
    RandomQuants(rng, blk + 2, 32, 0x81, 0x7F, true);
  }
  return a;
}

std::vector<const KernelTable*> PackedTables() {
  std::vector<const KernelTable*> out;
  for (const KernelTable* t : AvailableKernelTables()) {
    if (t->For(DType::kQ4_0_R16).gemm != nullptr || t->For(DType::kQ8_0_R16).gemm != nullptr) {
      out.push_back(t);
    }
  }
  return out;
}

GemmFn RefGemm(DType packed) {
  return packed == DType::kQ4_0_R16 ? ref::GemmQ4_0R16 : ref::GemmQ8_0R16;
}

// One weight matrix (original and packed) with kMaxTokens activation rows and the oracle
// want[t * rows + r] = ref::VecDotPackedOrder(original row r, token t).
struct Problem {
  static constexpr int64_t kMaxTokens = 64;
  const PackCase& c;
  int64_t rows, k;
  size_t w_row_bytes, a_row_bytes;
  std::vector<uint8_t> orig, packed, act;
  std::vector<float> want;

  Problem(const PackCase& pc, int64_t r, int64_t kk, uint32_t seed)
      : c(pc), rows(r), k(kk), w_row_bytes(kk / kQK * pc.block_bytes), a_row_bytes(kk / kQK * 34) {
    orig = RandomWeights(c, rows, k, seed);
    packed.resize(orig.size());
    PackRows(c.orig, orig.data(), w_row_bytes, rows, k, packed.data());
    act = RandomActivations(kMaxTokens, k, seed * 31 + 7);
    want.resize(static_cast<size_t>(kMaxTokens * rows));
    for (int64_t t = 0; t < kMaxTokens; ++t) {
      for (int64_t i = 0; i < rows; ++i) {
        want[t * rows + i] = ref::VecDotPackedOrder(c.packed, orig.data() + i * w_row_bytes,
                                                    act.data() + t * a_row_bytes, k);
      }
    }
  }
};

// Runs `gemm` on tokens [t_first, t_first + n_tokens) of p with misaligned copies of the
// weights/activations, out_stride > rows and a sentinel-filled output, and checks every value
// in [row_begin, row_end) against p.want bit for bit and every other float untouched.
void CheckGemm(GemmFn gemm, const Problem& p, int64_t t_first, int64_t n_tokens,
               int64_t row_begin, int64_t row_end, int w_off, int a_off, int out_off,
               int64_t stride_pad, const std::string& what) {
  Misaligned w(p.packed.size(), w_off), a(p.a_row_bytes * n_tokens + 1, a_off);
  std::memcpy(w.data(), p.packed.data(), p.packed.size());
  if (n_tokens > 0) {
    std::memcpy(a.data(), p.act.data() + t_first * p.a_row_bytes, p.a_row_bytes * n_tokens);
  }
  const int64_t out_stride = p.rows + stride_pad;
  const size_t out_bytes = static_cast<size_t>(out_stride * (n_tokens + 1)) * sizeof(float);
  Misaligned out(out_bytes, out_off, 0xC3), untouched(out_bytes, out_off, 0xC3);
  gemm(w.data(), p.w_row_bytes, a.data(), p.a_row_bytes, n_tokens, p.k,
       reinterpret_cast<float*>(out.data()), out_stride, row_begin, row_end);
  for (int64_t t = 0; t < n_tokens + 1; ++t) {
    for (int64_t i = 0; i < out_stride; ++i) {
      const size_t at = static_cast<size_t>(t * out_stride + i) * sizeof(float);
      const bool written = t < n_tokens && i >= row_begin && i < row_end;
      if (written) {
        float got;
        std::memcpy(&got, out.data() + at, sizeof(got));
        const float expect = p.want[(t_first + t) * p.rows + i];
        ASSERT_EQ(std::memcmp(&got, &expect, sizeof(float)), 0)
            << what << " token " << t_first + t << " row " << i << ": got " << got << " want "
            << expect;
      } else {
        ASSERT_EQ(std::memcmp(out.data() + at, untouched.data() + at, sizeof(float)), 0)
            << what << " wrote outside its range: token " << t << " column " << i;
      }
    }
  }
}

TEST(PackedCpu, PackRowsUnpackRowRoundTrip) {
  for (const PackCase& c : kCases) {
    for (int64_t rows : {16, 48}) {
      for (int64_t nb : {1, 3, 8}) {
        const int64_t k = nb * kQK;
        const size_t row_bytes = nb * c.block_bytes;
        const std::vector<uint8_t> orig = RandomWeights(c, rows, k, 11 * rows + nb);
        std::vector<uint8_t> packed(orig.size());
        PackRows(c.orig, orig.data(), row_bytes, rows, k, packed.data());
        EXPECT_NE(packed, orig) << DTypeName(c.packed);
        std::vector<uint8_t> row(row_bytes);
        for (int64_t r = 0; r < rows; ++r) {
          UnpackRow(c.packed, packed.data(), row_bytes, r, k, row.data());
          ASSERT_EQ(std::memcmp(row.data(), orig.data() + r * row_bytes, row_bytes), 0)
              << DTypeName(c.packed) << " row " << r << " of " << rows << " nb " << nb;
        }
      }
    }
  }
}

TEST(PackedCpu, X86TablesHavePackedGemmSharingTheQ8_0Quantizer) {
  for (const KernelTable* t : AvailableKernelTables()) {
    if (t->isa != "avx2" && t->isa != "avx512") continue;
    for (const PackCase& c : kCases) {
      const TypeKernels& k = t->For(c.packed);
      EXPECT_NE(k.gemm, nullptr) << t->isa << " " << DTypeName(c.packed);
      EXPECT_EQ(k.dot_type, DType::kQ8_0) << t->isa;
      // The backend shares quantized activations only when the pointers are equal.
      EXPECT_EQ(k.quantize_dot, t->For(c.orig).quantize_dot) << t->isa;
      EXPECT_EQ(k.vec_dot, nullptr) << t->isa;
    }
  }
}

// Every table's packed gemm (ref's included) equals VecDotPackedOrder bit for bit, over
// matrices of 16…96 rows, k from 1 to 128 blocks, token counts 0…17 and 64.
TEST(PackedCpu, GemmEqualsPackedOrderBitForBit) {
  const std::vector<const KernelTable*> tables = PackedTables();
  ASSERT_FALSE(tables.empty());
  constexpr int kOffsets[] = {0, 1, 3, 7, 16, 31, 33, 63};
  std::mt19937 rng(2024);
  int case_idx = 0;
  for (const PackCase& c : kCases) {
    for (int64_t rows : {16, 32, 48, 96}) {
      for (int64_t nb : {1, 2, 3, 4, 5, 7, 9, 16, 28, 31, 128}) {
        const Problem p(c, rows, nb * kQK, static_cast<uint32_t>(rows * 1000 + nb));
        std::vector<int64_t> token_counts = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                             10, 11, 12, 13, 14, 15, 16, 17, 64};
        if (nb > 9) token_counts = {1, 2, 5, 9, 17, 64};
        if (nb * rows > 4096) token_counts = {1, 3, 13, 64};
        for (int64_t n_tokens : token_counts) {
          // Row range [16a, 16b): the whole matrix, or a random sub-range.
          const int64_t groups = rows / 16;
          int64_t ga = 0, gb = groups;
          if (case_idx % 3 != 0) {
            ga = static_cast<int64_t>(rng() % groups);
            gb = ga + 1 + static_cast<int64_t>(rng() % (groups - ga));
          }
          const int w_off = kOffsets[case_idx % 8], a_off = kOffsets[(case_idx * 3 + 1) % 8];
          const int out_off = 4 * static_cast<int>(case_idx % 16);  // floats stay 4-aligned
          const int64_t pad = 1 + case_idx % 19;
          const int64_t t_first =
              n_tokens == 64 ? 0 : case_idx % (Problem::kMaxTokens - n_tokens + 1);
          ++case_idx;
          for (const KernelTable* table : tables) {
            const GemmFn gemm = table->For(c.packed).gemm;
            if (gemm == nullptr) continue;
            const std::string what = table->isa + "/" + DTypeName(c.packed) + " rows " +
                                     std::to_string(rows) + " nb " + std::to_string(nb) +
                                     " tokens " + std::to_string(n_tokens) + " range [" +
                                     std::to_string(16 * ga) + "," + std::to_string(16 * gb) + ")";
            CheckGemm(gemm, p, t_first, n_tokens, 16 * ga, 16 * gb, w_off, a_off, out_off, pad,
                      what);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

// Decode equals prefill: each token alone (the 1-token path) gives the bits it gets inside a
// 64-token batch, and ref's packed gemm agrees; on a k of 4096 (long rows, 128 blocks).
TEST(PackedCpu, OneTokenEqualsTheSameTokenInABatch) {
  for (const PackCase& c : kCases) {
    const Problem p(c, 64, 4096, 99);
    for (const KernelTable* table : PackedTables()) {
      const GemmFn gemm = table->For(c.packed).gemm;
      if (gemm == nullptr) continue;
      std::vector<float> batch(static_cast<size_t>(64 * p.rows));
      gemm(p.packed.data(), p.w_row_bytes, p.act.data(), p.a_row_bytes, 64, p.k, batch.data(),
           p.rows, 0, p.rows);
      for (int64_t t : {0, 1, 7, 8, 9, 31, 63}) {
        std::vector<float> one(static_cast<size_t>(p.rows));
        gemm(p.packed.data(), p.w_row_bytes, p.act.data() + t * p.a_row_bytes, p.a_row_bytes, 1,
             p.k, one.data(), p.rows, 0, p.rows);
        ASSERT_EQ(std::memcmp(one.data(), batch.data() + t * p.rows, p.rows * sizeof(float)), 0)
            << table->isa << "/" << DTypeName(c.packed) << " token " << t;
        ASSERT_EQ(std::memcmp(one.data(), p.want.data() + t * p.rows, p.rows * sizeof(float)), 0)
            << table->isa << "/" << DTypeName(c.packed) << " token " << t;
      }
      // The reference gemm too (same oracle, other code).
      std::vector<float> ref_out(static_cast<size_t>(3 * p.rows));
      RefGemm(c.packed)(p.packed.data(), p.w_row_bytes, p.act.data(), p.a_row_bytes, 3, p.k,
                        ref_out.data(), p.rows, 0, p.rows);
      EXPECT_EQ(std::memcmp(ref_out.data(), batch.data(), ref_out.size() * sizeof(float)), 0)
          << table->isa << "/" << DTypeName(c.packed);
    }
  }
}

// Extreme quants everywhere: Q8_0 weights all −128 or all 127 against activations all ±127
// (the int16 pair sums of maddubs must neither saturate nor lose the sign), Q4_0 nibbles all
// 0 or 15, with the largest f16 scales.
TEST(PackedCpu, ExtremeQuantsAreExact) {
  for (const PackCase& c : kCases) {
    const int64_t rows = 32, k = 256, nb = k / kQK;
    Problem p(c, rows, k, 5);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t* blk = p.orig.data() + r * p.w_row_bytes + b * c.block_bytes;
        const uint16_t d = (r + b) % 2 ? 0x7BFF : 0xFBFF;
        std::memcpy(blk, &d, 2);
        const uint8_t q = c.orig == DType::kQ4_0 ? (r % 2 ? 0xFF : 0x00) : (r % 2 ? 0x7F : 0x80);
        std::memset(blk + 2, q, c.block_bytes - 2);
      }
    }
    PackRows(c.orig, p.orig.data(), p.w_row_bytes, rows, k, p.packed.data());
    for (int64_t t = 0; t < Problem::kMaxTokens; ++t) {
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t* blk = p.act.data() + t * p.a_row_bytes + b * 34;
        const uint16_t d = 0x7BFF;
        std::memcpy(blk, &d, 2);
        std::memset(blk + 2, (t + b) % 3 ? 0x7F : 0x81, 32);  // isum = ±32·127·w
      }
      for (int64_t i = 0; i < rows; ++i) {
        p.want[t * rows + i] = ref::VecDotPackedOrder(
            c.packed, p.orig.data() + i * p.w_row_bytes, p.act.data() + t * p.a_row_bytes, k);
      }
    }
    for (const KernelTable* table : PackedTables()) {
      const GemmFn gemm = table->For(c.packed).gemm;
      if (gemm == nullptr) continue;
      for (int64_t n_tokens : {1, 5, 64}) {
        CheckGemm(gemm, p, 0, n_tokens, 0, rows, 0, 0, 0, 3,
                  table->isa + "/" + DTypeName(c.packed) + " extremes");
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kernels
