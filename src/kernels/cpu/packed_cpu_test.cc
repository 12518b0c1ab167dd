// The packed weight layouts (kernels/pack.h) on every kernel table that has a packed gemm:
// PackRows/UnpackRow round trip, and gemm bit for bit equal to ref::VecDotPackedOrder on the
// original (unpacked) rows and to ref's packed gemm, over row ranges, block counts (odd ones
// too), token counts (every tile remainder, the 1-token decode path), misaligned buffers and
// extreme quants/scales; untouched outside its row range; a token's value independent of the
// batch it is in.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/pack.h"
#include "kernels/quant.h"
#include "tensor/dtype.h"

namespace kiln::kernels {
namespace {

struct PackCase {
  DType orig, packed;
  size_t block_bytes;  // original block bytes
  int64_t block_elems;
  DType act;           // activation (dot) type
  size_t act_bytes;    // its block bytes
};
constexpr PackCase kCases[] = {
    {DType::kQ4_0, DType::kQ4_0_R16, 18, 32, DType::kQ8_0, 34},
    {DType::kQ8_0, DType::kQ8_0_R16, 34, 32, DType::kQ8_0, 34},
    {DType::kQ5_0, DType::kQ5_0_R16, 22, 32, DType::kQ8_0, 34},
    {DType::kQ4_K, DType::kQ4_K_R16, 144, 256, DType::kQ8_K, 292},
    {DType::kQ6_K, DType::kQ6_K_R16, 210, 256, DType::kQ8_K, 292},
};

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

// One block of the original type c.orig: every bit pattern of the quants (Q4_0/Q5_0: any
// nibble and high bit; Q8_0: −128…127; Q4_K: any scale/min byte and nibble; Q6_K: any ql, qh
// and int8 sub-scale), f16 scales from RandomScale.
void RandomBlock(const PackCase& c, std::mt19937& rng, uint8_t* blk) {
  const uint16_t d = RandomScale(rng), d2 = RandomScale(rng);
  switch (c.orig) {
    case DType::kQ4_0:
      std::memcpy(blk, &d, 2);
      RandomQuants(rng, blk + 2, 16, 0x00, 0xFF, false);
      break;
    case DType::kQ5_0:
      std::memcpy(blk, &d, 2);
      RandomQuants(rng, blk + 2, 20, 0x00, 0xFF, false);
      break;
    case DType::kQ8_0:
      std::memcpy(blk, &d, 2);
      RandomQuants(rng, blk + 2, 32, 0x80, 0x7F, true);
      break;
    case DType::kQ4_K:
      std::memcpy(blk, &d, 2);
      std::memcpy(blk + 2, &d2, 2);
      RandomQuants(rng, blk + 4, 12, 0x00, 0xFF, false);
      RandomQuants(rng, blk + 16, 128, 0x00, 0xFF, false);
      break;
    case DType::kQ6_K:
      RandomQuants(rng, blk, 192, 0x00, 0xFF, false);
      RandomQuants(rng, blk + 192, 16, 0x80, 0x7F, true);
      std::memcpy(blk + 208, &d, 2);
      break;
    default:
      FAIL() << DTypeName(c.orig);
  }
}

// `rows` rows of the original type c.orig.
std::vector<uint8_t> RandomWeights(const PackCase& c, int64_t rows, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t nb = k / c.block_elems;
  std::vector<uint8_t> w(static_cast<size_t>(rows * nb) * c.block_bytes);
  for (int64_t i = 0; i < rows * nb; ++i) RandomBlock(c, rng, w.data() + i * c.block_bytes);
  return w;
}

// Sets a Q8_K block's bsums from its quants.
void SetBsums(uint8_t* blk) {
  for (int j = 0; j < 16; ++j) {
    int sum = 0;
    for (int e = 0; e < 16; ++e) sum += static_cast<int8_t>(blk[4 + 16 * j + e]);
    const int16_t s16 = static_cast<int16_t>(sum);
    std::memcpy(blk + 260 + 2 * j, &s16, 2);
  }
}

// Activation rows as quantize_dot makes them: Q8_0 quants in [−127, 127]; Q8_K quants in
// [−128, 127] with a finite f32 scale and consistent bsums.
std::vector<uint8_t> RandomActivations(const PackCase& c, int64_t n_tokens, int64_t k,
                                       uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t nb = k / c.block_elems;
  std::vector<uint8_t> a(static_cast<size_t>(n_tokens * nb) * c.act_bytes);
  for (int64_t i = 0; i < n_tokens * nb; ++i) {
    uint8_t* blk = a.data() + i * c.act_bytes;
    if (c.act == DType::kQ8_0) {
      const uint16_t d = RandomScale(rng);
      std::memcpy(blk, &d, 2);
      RandomQuants(rng, blk + 2, 32, 0x81, 0x7F, true);
    } else {
      const float d = std::ldexp(static_cast<float>(rng() % 1000) - 500.0f,
                                 static_cast<int>(rng() % 40) - 30);
      std::memcpy(blk, &d, 4);
      RandomQuants(rng, blk + 4, 256, 0x80, 0x7F, true);
      SetBsums(blk);
    }
  }
  return a;
}

std::vector<const KernelTable*> PackedTables() {
  std::vector<const KernelTable*> out;
  for (const KernelTable* t : AvailableKernelTables()) {
    for (const PackCase& c : kCases) {
      if (t->For(c.packed).gemm != nullptr) {
        out.push_back(t);
        break;
      }
    }
  }
  return out;
}

GemmFn RefGemm(DType packed) { return RefKernelTable().For(packed).gemm; }

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
      : c(pc),
        rows(r),
        k(kk),
        w_row_bytes(kk / pc.block_elems * pc.block_bytes),
        a_row_bytes(kk / pc.block_elems * pc.act_bytes) {
    orig = RandomWeights(c, rows, k, seed);
    packed.resize(orig.size());
    PackRows(c.orig, orig.data(), w_row_bytes, rows, k, packed.data());
    act = RandomActivations(c, kMaxTokens, k, seed * 31 + 7);
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
        const int64_t k = nb * c.block_elems;
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

TEST(PackedCpu, X86TablesHavePackedGemmSharingTheOriginalQuantizer) {
  for (const KernelTable* t : AvailableKernelTables()) {
    if (t->isa != "avx2" && t->isa != "avx512") continue;
    for (const PackCase& c : kCases) {
      const TypeKernels& k = t->For(c.packed);
      EXPECT_NE(k.gemm, nullptr) << t->isa << " " << DTypeName(c.packed);
      EXPECT_EQ(k.dot_type, c.act) << t->isa;
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
        if (c.block_elems == 256 && nb > 16) continue;  // k up to 4096 for the K types
        const Problem p(c, rows, nb * c.block_elems, static_cast<uint32_t>(rows * 1000 + nb));
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

// The packed order is the original type's dot product, only summed in another order: on
// quantized Gaussian rows it equals Σ dequantized weight × dequantized activation (double)
// within float rounding, and agrees with ref::VecDot just as closely.
TEST(PackedCpu, PackedOrderIsTheOriginalTypesDotProduct) {
  const KernelTable& ref_table = RefKernelTable();
  for (const PackCase& c : kCases) {
    const int64_t k = 1024;
    std::mt19937 rng(77);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::vector<float> w(k), x(k), wd(k), xd(k);
    std::vector<uint8_t> wq(*RowBytes(c.orig, k)), aq(*RowBytes(c.act, k));
    for (int trial = 0; trial < 20; ++trial) {
      for (float& v : w) v = gauss(rng) * (trial % 2 ? 0.01f : 3.0f);
      for (float& v : x) v = gauss(rng) * (trial % 3 ? 1.0f : 40.0f);
      ref::QuantizeRow(c.orig, w.data(), wq.data(), k);
      ref_table.For(c.orig).quantize_dot(x.data(), aq.data(), k);
      ref::DequantizeRow(c.orig, wq.data(), wd.data(), k);
      ref::DequantizeRow(c.act, aq.data(), xd.data(), k);
      double exact = 0, mag = 0;
      for (int64_t i = 0; i < k; ++i) {
        exact += static_cast<double>(wd[i]) * xd[i];
        mag += std::fabs(static_cast<double>(wd[i]) * xd[i]);
      }
      const float got = ref::VecDotPackedOrder(c.packed, wq.data(), aq.data(), k);
      EXPECT_NEAR(got, exact, 1e-5 * mag) << DTypeName(c.packed) << " trial " << trial;
      EXPECT_NEAR(got, ref::VecDot(c.orig, wq.data(), aq.data(), k), 2e-5 * mag)
          << DTypeName(c.packed) << " trial " << trial;
    }
  }
}

// Extreme quants everywhere: Q8_0 weights all −128 or all 127 against activations all ±127
// (the int16 pair sums of maddubs must neither saturate nor lose the sign), Q4_0/Q5_0 nibbles
// and high bits all 0 or all 1, Q4_K sub-scales and mins 63 with nibbles 0 or 15, Q6_K values
// 0 or 63 with sub-scales −128 or 127 against Q8_K activations all −128 or 127; the largest
// f16 scales.
void SetExtremeBlock(const PackCase& c, int64_t r, int64_t b, uint8_t* blk) {
  const uint16_t d = (r + b) % 2 ? 0x7BFF : 0xFBFF;
  const uint8_t all = r % 2 ? 0xFF : 0x00;
  switch (c.orig) {
    case DType::kQ8_0:
      std::memcpy(blk, &d, 2);
      std::memset(blk + 2, r % 2 ? 0x7F : 0x80, 32);
      break;
    case DType::kQ4_K:
      std::memcpy(blk, &d, 2);
      std::memcpy(blk + 2, &d, 2);
      std::memset(blk + 4, 0xFF, 12);
      std::memset(blk + 16, all, 128);
      break;
    case DType::kQ6_K:
      std::memset(blk, all, 192);
      std::memset(blk + 192, (r / 2) % 2 ? 0x7F : 0x80, 16);
      std::memcpy(blk + 208, &d, 2);
      break;
    default:  // Q4_0, Q5_0
      std::memcpy(blk, &d, 2);
      std::memset(blk + 2, all, c.block_bytes - 2);
  }
}

TEST(PackedCpu, ExtremeQuantsAreExact) {
  for (const PackCase& c : kCases) {
    const int64_t rows = 32, k = 512, nb = k / c.block_elems;
    Problem p(c, rows, k, 5);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        SetExtremeBlock(c, r, b, p.orig.data() + r * p.w_row_bytes + b * c.block_bytes);
      }
    }
    PackRows(c.orig, p.orig.data(), p.w_row_bytes, rows, k, p.packed.data());
    for (int64_t t = 0; t < Problem::kMaxTokens; ++t) {
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t* blk = p.act.data() + t * p.a_row_bytes + b * c.act_bytes;
        if (c.act == DType::kQ8_0) {
          const uint16_t d = 0x7BFF;
          std::memcpy(blk, &d, 2);
          std::memset(blk + 2, (t + b) % 3 ? 0x7F : 0x81, 32);  // isum = ±32·127·w
        } else {
          const float d = 1e4f;
          std::memcpy(blk, &d, 4);
          std::memset(blk + 4, (t + b) % 3 ? 0x7F : 0x80, 256);
          SetBsums(blk);
        }
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
