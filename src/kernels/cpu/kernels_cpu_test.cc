// Every CPU kernel table compiled in and usable here, against the reference table
// (kernels/ref): activation quantizers byte for byte, vec_dot within a named per-type
// tolerance, over many sizes, misaligned pointers and seeds; gemm bit-identical to the same
// table's vec_dot (batch invariance) and untouched outside its row range.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/quant.h"
#include "tensor/dtype.h"

namespace kiln::kernels {
namespace {

// |vec_dot - ref| <= budget * sum_i |w_i * a_i| (dequantized). Integer block sums are exact
// in every table; only float accumulation order differs (8/16 lanes and two chains vs the
// reference's sequential order, double for the float types).
constexpr double kMaxRelErrF32 = 2e-6;
constexpr double kMaxRelErrF16 = 2e-6;
constexpr double kMaxRelErrBF16 = 2e-6;
constexpr double kMaxRelErrLegacyQ = 2e-6;  // Q4_0 Q4_1 Q5_0 Q5_1 Q8_0
constexpr double kMaxRelErrKQ = 2e-6;       // Q4_K Q5_K Q6_K

struct TypeCase {
  DType type;
  double max_rel_err;
};

constexpr TypeCase kTypes[] = {
    {DType::kF32, kMaxRelErrF32},      {DType::kF16, kMaxRelErrF16},
    {DType::kBF16, kMaxRelErrBF16},    {DType::kQ4_0, kMaxRelErrLegacyQ},
    {DType::kQ4_1, kMaxRelErrLegacyQ}, {DType::kQ5_0, kMaxRelErrLegacyQ},
    {DType::kQ5_1, kMaxRelErrLegacyQ}, {DType::kQ8_0, kMaxRelErrLegacyQ},
    {DType::kQ4_K, kMaxRelErrKQ},      {DType::kQ5_K, kMaxRelErrKQ},
    {DType::kQ6_K, kMaxRelErrKQ},
};

constexpr int kMisalign[] = {0, 1, 3, 7, 16, 31, 33, 63};

// Buffer with its data starting `offset` bytes past a 64-byte boundary.
class Misaligned {
 public:
  Misaligned(size_t n_bytes, int offset) : storage_(n_bytes + 128, 0xA5), offset_(offset) {
    const auto base = reinterpret_cast<uintptr_t>(storage_.data());
    shift_ = static_cast<size_t>((64 - base % 64) % 64) + static_cast<size_t>(offset);
  }
  uint8_t* data() { return storage_.data() + shift_; }

 private:
  std::vector<uint8_t> storage_;
  int offset_;
  size_t shift_ = 0;
};

enum class Pattern { kGaussian, kTies, kWide, kZeros };

// Inputs that exercise the quantizers' corners: exact .5 ties after scaling (roundf vs
// round-to-even), a wide dynamic range, all-zero blocks.
std::vector<float> RandomRow(int64_t n, uint32_t seed, Pattern pattern) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> half_steps(-254, 254);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (pattern) {
      case Pattern::kGaussian: x[i] = gauss(rng); break;
      case Pattern::kTies: x[i] = (i % 32 == 0) ? 127.0f : 0.5f * half_steps(rng); break;
      case Pattern::kWide: x[i] = gauss(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 40) - 20); break;
      case Pattern::kZeros: x[i] = (i / 256) % 2 == 0 ? 0.0f : gauss(rng); break;
    }
  }
  return x;
}

size_t Bytes(DType t, int64_t n) { return *RowBytes(t, n); }

std::string Name(const KernelTable& table, DType t) {
  return table.isa + "/" + DTypeName(t);
}

std::vector<const KernelTable*> FastTables() {
  std::vector<const KernelTable*> out;
  for (const KernelTable* t : AvailableKernelTables()) {
    if (t->isa != "ref") out.push_back(t);
  }
  return out;
}

TEST(KernelsCpu, TablesAreListedOnceWithRefFirst) {
  const std::vector<const KernelTable*> tables = AvailableKernelTables();
  ASSERT_FALSE(tables.empty());
  EXPECT_EQ(tables[0]->isa, "ref");
  for (size_t i = 0; i < tables.size(); ++i) {
    for (size_t j = i + 1; j < tables.size(); ++j) EXPECT_NE(tables[i]->isa, tables[j]->isa);
  }
  // The active table is one of them.
  bool found = false;
  for (const KernelTable* t : tables) found |= (t == &ActiveKernelTable());
  EXPECT_TRUE(found);
  // KILN_KERNELS forces a table when this CPU can run it; otherwise the best one is used.
  const char* forced = std::getenv("KILN_KERNELS");
  bool forced_available = false;
  for (const KernelTable* t : tables) forced_available |= (forced != nullptr && t->isa == forced);
  EXPECT_EQ(ActiveKernelTable().isa, forced_available ? forced : tables.back()->isa);
  if (FastTables().empty()) GTEST_LOG_(INFO) << "no SIMD table on this CPU: only ref tested";
}

TEST(KernelsCpu, EveryTypeHasACompleteDotPath) {
  for (const KernelTable* table : AvailableKernelTables()) {
    for (const TypeCase& tc : kTypes) {
      const TypeKernels& k = table->For(tc.type);
      EXPECT_NE(k.quantize_dot, nullptr) << Name(*table, tc.type);
      EXPECT_NE(k.vec_dot, nullptr) << Name(*table, tc.type);
      EXPECT_EQ(k.dot_type, RefKernelTable().For(tc.type).dot_type) << Name(*table, tc.type);
      if (table->isa != "ref") {
        EXPECT_NE(k.gemm, nullptr) << Name(*table, tc.type);
      }
    }
  }
}

// Element counts to test: all small sizes and several block-multiple sizes.
std::vector<int64_t> Sizes(DType type) {
  const int64_t block = Info(type).block_elems;
  std::vector<int64_t> sizes;
  if (block == 1) {
    for (int64_t n = 0; n <= 3 * 32 + 1; ++n) sizes.push_back(n);
    for (int64_t n : {255, 576, 1000, 1536}) sizes.push_back(n);
  } else {
    // Up to 3 × (blocks per tile step) + 1 with room for the two-chain unroll.
    const int64_t max_blocks = block == 256 ? 9 : 25;
    for (int64_t b = 1; b <= max_blocks; ++b) sizes.push_back(b * block);
  }
  return sizes;
}

TEST(KernelsCpu, QuantizeDotIsByteIdenticalToRef) {
  const KernelTable& ref = RefKernelTable();
  for (const KernelTable* table : FastTables()) {
    for (const TypeCase& tc : kTypes) {
      const TypeKernels& k = table->For(tc.type);
      const DType dot = k.dot_type;
      int case_idx = 0;
      for (int64_t n : Sizes(dot == DType::kQ8_K ? DType::kQ8_K : dot)) {
        for (Pattern p : {Pattern::kGaussian, Pattern::kTies, Pattern::kWide, Pattern::kZeros}) {
          const int off = kMisalign[case_idx++ % std::size(kMisalign)];
          const std::vector<float> x = RandomRow(n, 1000 + case_idx, p);
          Misaligned src(n * sizeof(float), (off * 4) % 64);  // float* keeps 4-byte alignment
          if (n > 0) std::memcpy(src.data(), x.data(), n * sizeof(float));
          const size_t bytes = Bytes(dot, n);
          Misaligned got(bytes, (off * 7) % 64), want(bytes, 0);
          k.quantize_dot(reinterpret_cast<const float*>(src.data()), got.data(), n);
          ref.For(tc.type).quantize_dot(x.data(), want.data(), n);
          ASSERT_EQ(std::memcmp(got.data(), want.data(), bytes), 0)
              << Name(*table, tc.type) << " n=" << n << " pattern=" << static_cast<int>(p);
        }
      }
    }
  }
}

TEST(KernelsCpu, FloatQuantizersKeepSpecialValues) {
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), -std::nanf("0x1234"),
                            1e-40f, -3e-39f, 65519.0f, 65520.0f, 1e30f, 5.96e-8f, 2.9e-8f,
                            1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 3.3895314e38f};
  std::vector<float> x;
  for (int rep = 0; rep < 3; ++rep) x.insert(x.end(), std::begin(specials), std::end(specials));
  const int64_t n = static_cast<int64_t>(x.size());
  for (const KernelTable* table : FastTables()) {
    for (DType t : {DType::kF16, DType::kBF16}) {
      std::vector<uint16_t> got(x.size()), want(x.size());
      table->For(t).quantize_dot(x.data(), got.data(), n);
      RefKernelTable().For(t).quantize_dot(x.data(), want.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(got[i], want[i]) << Name(*table, t) << " x=" << x[i];
      }
    }
  }
}

// sum_i |w_i * a_i| from the dequantized rows: the scale of the rounding error budget.
double AbsDotScale(DType w_type, const void* w, DType a_type, const void* a, int64_t n) {
  std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
  ref::DequantizeRow(w_type, w, wf.data(), n);
  ref::DequantizeRow(a_type, a, af.data(), n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(wf[i]) * af[i]);
  return s;
}

TEST(KernelsCpu, VecDotMatchesRefWithinTolerance) {
  const KernelTable& ref = RefKernelTable();
  for (const KernelTable* table : FastTables()) {
    for (const TypeCase& tc : kTypes) {
      const TypeKernels& k = table->For(tc.type);
      int case_idx = 0;
      for (int64_t n : Sizes(tc.type)) {
        for (uint32_t seed : {1u, 2u, 3u}) {
          const int w_off = kMisalign[case_idx % std::size(kMisalign)];
          const int a_off = kMisalign[(case_idx * 3 + 1) % std::size(kMisalign)];
          ++case_idx;
          const std::vector<float> wf = RandomRow(n, seed * 7919 + n, Pattern::kGaussian);
          const std::vector<float> af = RandomRow(n, seed * 104729 + n, Pattern::kGaussian);
          Misaligned w(Bytes(tc.type, n), w_off), a(Bytes(k.dot_type, n), a_off);
          ref::QuantizeRow(tc.type, wf.data(), w.data(), n);
          ref.For(tc.type).quantize_dot(af.data(), a.data(), n);
          const double want = ref.For(tc.type).vec_dot(w.data(), a.data(), n);
          const double got = k.vec_dot(w.data(), a.data(), n);
          const double budget =
              tc.max_rel_err * AbsDotScale(tc.type, w.data(), k.dot_type, a.data(), n) + 1e-30;
          ASSERT_LE(std::fabs(got - want), budget)
              << Name(*table, tc.type) << " n=" << n << " seed=" << seed << " got=" << got
              << " want=" << want;
        }
      }
    }
  }
}

// Q8_0 weights at the extremes of their range (±127 everywhere) against extreme activations:
// the int16 pair sums of maddubs must not saturate.
TEST(KernelsCpu, VecDotExtremeQuantsDoNotSaturate) {
  const KernelTable& ref = RefKernelTable();
  const int64_t n = 256 * 4;
  std::vector<float> big(n);
  for (int64_t i = 0; i < n; ++i) big[i] = (i % 3 == 0) ? -1.0f : 1.0f;
  for (const KernelTable* table : FastTables()) {
    for (const TypeCase& tc : kTypes) {
      const TypeKernels& k = table->For(tc.type);
      std::vector<uint8_t> w(Bytes(tc.type, n)), a(Bytes(k.dot_type, n));
      ref::QuantizeRow(tc.type, big.data(), w.data(), n);
      ref.For(tc.type).quantize_dot(big.data(), a.data(), n);
      const double want = ref.For(tc.type).vec_dot(w.data(), a.data(), n);
      const double got = k.vec_dot(w.data(), a.data(), n);
      EXPECT_NEAR(got, want, tc.max_rel_err * std::fabs(want) + 1e-6) << Name(*table, tc.type);
    }
  }
}

// Batch invariance: every (row, token) value of gemm is the same table's vec_dot bit for bit,
// whatever the number of tokens (1 = the multi-row matrix × vector path, then every token
// tile size and remainder), the row range (tiles of several rows and leftover rows) and the
// row length (blocks before/after the two-chain unroll). Outside its rows gemm writes nothing.
void CheckGemmAgainstVecDot(const KernelTable& table, const TypeCase& tc, int64_t n,
                            int64_t n_rows, int64_t row_begin, int64_t row_end,
                            int64_t n_tokens, uint32_t seed) {
  constexpr float kSentinel = -12345.0f;
  const TypeKernels& k = table.For(tc.type);
  const size_t w_row = Bytes(tc.type, n), a_row = Bytes(k.dot_type, n);
  Misaligned w(w_row * n_rows, 5), a(a_row * n_tokens, 11);
  for (int64_t r = 0; r < n_rows; ++r) {
    const std::vector<float> x = RandomRow(n, seed + 31 * r + 7, Pattern::kGaussian);
    ref::QuantizeRow(tc.type, x.data(), w.data() + r * w_row, n);
  }
  for (int64_t t = 0; t < n_tokens; ++t) {
    const std::vector<float> x = RandomRow(n, seed + 977 * t + 3, Pattern::kGaussian);
    k.quantize_dot(x.data(), a.data() + t * a_row, n);
  }
  const int64_t out_stride = n_rows + 3;
  std::vector<float> out(static_cast<size_t>(out_stride * n_tokens), kSentinel);
  k.gemm(w.data(), w_row, a.data(), a_row, n_tokens, n, out.data(), out_stride, row_begin,
         row_end);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < out_stride; ++r) {
      const float got = out[t * out_stride + r];
      if (r < row_begin || r >= row_end) {
        ASSERT_EQ(got, kSentinel) << Name(table, tc.type) << " wrote outside rows";
        continue;
      }
      const float want = k.vec_dot(w.data() + r * w_row, a.data() + t * a_row, n);
      ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0)
          << Name(table, tc.type) << " n=" << n << " rows [" << row_begin << ", " << row_end
          << ") tokens=" << n_tokens << " t=" << t << " r=" << r << " got=" << got
          << " want=" << want;
    }
  }
}

TEST(KernelsCpu, GemmEqualsVecDotBitForBit) {
  for (const KernelTable* table : FastTables()) {
    for (const TypeCase& tc : kTypes) {
      ASSERT_NE(table->For(tc.type).gemm, nullptr) << Name(*table, tc.type);
      const int64_t block = Info(tc.type).block_elems;
      // Row lengths: one block, odd and even block counts, and for the float types tails.
      std::vector<int64_t> lengths;
      if (block == 1) {
        lengths = {1, 16, 77, 320};
      } else {
        lengths = {block, 3 * block, 8 * block};
      }
      for (int64_t n : lengths) {
        // (rows, row_begin, row_end): tiles of 2/4/8 rows plus leftovers at both ends.
        for (const auto& [n_rows, row_begin, row_end] :
             {std::tuple<int64_t, int64_t, int64_t>{37, 5, 29}, {40, 0, 40}, {19, 3, 4},
              {70, 1, 70}}) {
          for (int64_t n_tokens : {1, 2, 3, 4, 5, 8, 9, 17}) {
            CheckGemmAgainstVecDot(*table, tc, n, n_rows, row_begin, row_end, n_tokens,
                                   static_cast<uint32_t>(n * 131 + n_rows + n_tokens));
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kernels
