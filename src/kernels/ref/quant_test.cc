// Stand-alone checks of the reference quant kernels (no ggml needed): round-trip error
// within a per-type NMSE budget, dot products against the exact dot of the dequantized rows,
// misaligned buffers, and the reference kernel table. Bit-exactness with ggml itself is
// quant_ggml_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/ref/quant_rows.h"
#include "kernels/quant.h"
#include "tensor/dtype.h"
#include "tensor/fp16.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels {
namespace {

// Normalized MSE sum((x - x')^2) / sum(x^2) of a quantize → dequantize round trip on
// N(0, 1) rows of 4096. Budgets are 1.5x the worst of three seeds measured with these
// (ggml-identical) quantizers; a broken packing or scale is off by orders of magnitude.
constexpr double kMaxNmseF32 = 0.0;
constexpr double kMaxNmseF16 = 6.6e-8;   // measured 4.37e-8
constexpr double kMaxNmseBF16 = 4.2e-6;  // 2.80e-6
constexpr double kMaxNmseQ4_0 = 1.15e-2;  // 7.66e-3
constexpr double kMaxNmseQ4_1 = 9.3e-3;   // 6.22e-3
constexpr double kMaxNmseQ5_0 = 2.8e-3;   // 1.86e-3
constexpr double kMaxNmseQ5_1 = 2.2e-3;   // 1.46e-3
constexpr double kMaxNmseQ8_0 = 4.4e-5;   // 2.92e-5
constexpr double kMaxNmseQ8_1 = 4.4e-5;   // 2.92e-5
constexpr double kMaxNmseQ4_K = 7.9e-3;   // 5.28e-3
constexpr double kMaxNmseQ5_K = 2.0e-3;   // 1.31e-3
constexpr double kMaxNmseQ6_K = 4.8e-4;   // 3.21e-4
constexpr double kMaxNmseQ8_K = 7.2e-5;   // 4.81e-5

// VecDot accumulates in float block by block; allowed |dot - exact| relative to
// sum |w_i a_i| (the condition-free scale of the rounding error). Q8_1 activations also
// carry s = d * sum(q) rounded to f16, which the *_1 dot products use for the min term:
// each block may add up to |m| * |s| * 2^-11 more.
constexpr double kMaxDotRelErr = 1e-5;
constexpr double kF16HalfUlp = 1.0 / 2048;

// The f16 rounding allowance of the Q8_1 `s` term, summed over blocks.
double Q8_1SumTermAllowance(DType t, const std::vector<uint8_t>& qw,
                            const std::vector<uint8_t>& qa) {
  if (t != DType::kQ4_1 && t != DType::kQ5_1) return 0;
  const size_t wb = Info(t).block_bytes;
  double allowance = 0;
  for (size_t b = 0; b < qa.size() / sizeof(BlockQ8_1); ++b) {
    uint16_t m, s;  // Q4_1/Q5_1: m at byte 2; Q8_1: s at byte 2
    std::memcpy(&m, qw.data() + b * wb + 2, sizeof(m));
    std::memcpy(&s, qa.data() + b * sizeof(BlockQ8_1) + 2, sizeof(s));
    allowance += std::fabs(Fp16ToFp32(m)) * std::fabs(Fp16ToFp32(s)) * kF16HalfUlp;
  }
  return allowance;
}

struct TypeCase {
  DType type;
  double max_nmse;
};

const TypeCase kTypes[] = {
    {DType::kF32, kMaxNmseF32},   {DType::kF16, kMaxNmseF16},   {DType::kBF16, kMaxNmseBF16},
    {DType::kQ4_0, kMaxNmseQ4_0}, {DType::kQ4_1, kMaxNmseQ4_1}, {DType::kQ5_0, kMaxNmseQ5_0},
    {DType::kQ5_1, kMaxNmseQ5_1}, {DType::kQ8_0, kMaxNmseQ8_0}, {DType::kQ8_1, kMaxNmseQ8_1},
    {DType::kQ4_K, kMaxNmseQ4_K}, {DType::kQ5_K, kMaxNmseQ5_K}, {DType::kQ6_K, kMaxNmseQ6_K},
    {DType::kQ8_K, kMaxNmseQ8_K},
};

const DType kWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                              DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                              DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

constexpr int64_t kRowElems = 4096;  // a multiple of every block size

std::vector<float> GaussianRow(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(rng);
  return x;
}

std::vector<uint8_t> Quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*RowBytes(t, static_cast<int64_t>(x.size())));
  ref::QuantizeRow(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> Dequantize(DType t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  ref::DequantizeRow(t, q.data(), y.data(), n);
  return y;
}

TEST(QuantRefTest, RoundTripWithinNmseBudget) {
  for (const TypeCase& tc : kTypes) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      const std::vector<float> x = GaussianRow(kRowElems, seed);
      const std::vector<float> y = Dequantize(tc.type, Quantize(tc.type, x), kRowElems);
      double err = 0, ref = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
        ref += static_cast<double>(x[i]) * x[i];
      }
      EXPECT_LE(err / ref, tc.max_nmse) << DTypeName(tc.type) << " seed " << seed;
      if (tc.max_nmse > 0) {
        // Budgets must stay meaningful: no type is near-lossless except the 8-bit/plain ones.
        EXPECT_GT(err / ref, tc.max_nmse / 20) << DTypeName(tc.type) << " budget too loose";
      }
    }
  }
}

TEST(QuantRefTest, ZeroRowsStayZero) {
  for (const TypeCase& tc : kTypes) {
    const std::vector<float> x(kRowElems, 0.0f);
    const std::vector<uint8_t> q = Quantize(tc.type, x);
    for (float v : Dequantize(tc.type, q, kRowElems)) ASSERT_EQ(v, 0.0f) << DTypeName(tc.type);
  }
}

TEST(QuantRefTest, VecDotMatchesExactDotOfDequantizedRows) {
  for (DType t : kWeightTypes) {
    const DType dt = DotTypeFor(t);
    for (uint32_t seed : {10u, 11u}) {
      const std::vector<float> w = GaussianRow(kRowElems, seed);
      const std::vector<float> a = GaussianRow(kRowElems, seed + 100);
      const std::vector<uint8_t> qw = Quantize(t, w);
      const std::vector<uint8_t> qa = Quantize(dt, a);
      const std::vector<float> dw = Dequantize(t, qw, kRowElems);
      const std::vector<float> da = Dequantize(dt, qa, kRowElems);
      double exact = 0, scale = 0;
      for (int64_t i = 0; i < kRowElems; ++i) {
        exact += static_cast<double>(dw[i]) * da[i];
        scale += std::fabs(static_cast<double>(dw[i]) * da[i]);
      }
      const float got = ref::VecDot(t, qw.data(), qa.data(), kRowElems);
      EXPECT_LE(std::fabs(got - exact), kMaxDotRelErr * scale + Q8_1SumTermAllowance(t, qw, qa))
          << DTypeName(t) << " seed " << seed << " got " << got << " exact " << exact;
    }
  }
}

// Blocks are packed and rows may start anywhere: results must not depend on alignment
// (and ASan/UBSan must stay quiet).
TEST(QuantRefTest, MisalignedBuffersGiveSameResults) {
  constexpr int64_t n = 512;
  for (DType t : kWeightTypes) {
    const DType dt = DotTypeFor(t);
    const std::vector<float> w = GaussianRow(n, 7);
    const std::vector<float> a = GaussianRow(n, 8);
    const std::vector<uint8_t> qw = Quantize(t, w);
    const std::vector<uint8_t> qa = Quantize(dt, a);
    const float aligned_dot = ref::VecDot(t, qw.data(), qa.data(), n);
    const std::vector<float> aligned_deq = Dequantize(t, qw, n);
    for (size_t off : {1u, 3u}) {
      std::vector<uint8_t> bw(qw.size() + off), ba(qa.size() + off);
      ref::QuantizeRow(t, w.data(), bw.data() + off, n);
      EXPECT_EQ(std::memcmp(bw.data() + off, qw.data(), qw.size()), 0) << DTypeName(t);
      std::memcpy(ba.data() + off, qa.data(), qa.size());
      EXPECT_EQ(ref::VecDot(t, bw.data() + off, ba.data() + off, n), aligned_dot)
          << DTypeName(t);
      std::vector<float> deq(n);
      ref::DequantizeRow(t, bw.data() + off, deq.data(), n);
      EXPECT_EQ(std::memcmp(deq.data(), aligned_deq.data(), n * sizeof(float)), 0)
          << DTypeName(t);
    }
  }
}

TEST(QuantRefTest, EmptyRows) {
  for (DType t : kWeightTypes) {
    EXPECT_EQ(ref::VecDot(t, nullptr, nullptr, 0), 0.0f) << DTypeName(t);
    ref::QuantizeRow(t, nullptr, nullptr, 0);
    ref::DequantizeRow(t, nullptr, nullptr, 0);
  }
}

TEST(QuantRefTest, DotTypesAreGgmls) {
  EXPECT_EQ(DotTypeFor(DType::kF32), DType::kF32);
  EXPECT_EQ(DotTypeFor(DType::kF16), DType::kF16);
  EXPECT_EQ(DotTypeFor(DType::kBF16), DType::kBF16);
  EXPECT_EQ(DotTypeFor(DType::kQ4_0), DType::kQ8_0);
  EXPECT_EQ(DotTypeFor(DType::kQ5_0), DType::kQ8_0);
  EXPECT_EQ(DotTypeFor(DType::kQ8_0), DType::kQ8_0);
  EXPECT_EQ(DotTypeFor(DType::kQ4_1), DType::kQ8_1);
  EXPECT_EQ(DotTypeFor(DType::kQ5_1), DType::kQ8_1);
  EXPECT_EQ(DotTypeFor(DType::kQ4_K), DType::kQ8_K);
  EXPECT_EQ(DotTypeFor(DType::kQ5_K), DType::kQ8_K);
  EXPECT_EQ(DotTypeFor(DType::kQ6_K), DType::kQ8_K);
}

TEST(QuantRefTest, RefKernelTableMatchesFunctions) {
  const KernelTable& table = RefKernelTable();
  EXPECT_EQ(table.isa, "ref");
  constexpr int64_t n = 1024;
  for (DType t : kWeightTypes) {
    const TypeKernels& k = table.For(t);
    ASSERT_NE(k.quantize_dot, nullptr) << DTypeName(t);
    ASSERT_NE(k.vec_dot, nullptr) << DTypeName(t);
    ASSERT_NE(k.dequantize, nullptr) << DTypeName(t);
    EXPECT_EQ(k.dot_type, DotTypeFor(t)) << DTypeName(t);
    const std::vector<float> w = GaussianRow(n, 21);
    const std::vector<float> a = GaussianRow(n, 22);
    const std::vector<uint8_t> qw = Quantize(t, w);
    std::vector<uint8_t> qa(*RowBytes(k.dot_type, n));
    k.quantize_dot(a.data(), qa.data(), n);
    std::vector<uint8_t> want(qa.size());
    if (k.dot_type == DType::kQ8_0) {
      ref::QuantizeActivationRowQ8_0(a.data(), want.data(), n);
    } else if (k.dot_type == DType::kQ8_1) {
      ref::QuantizeActivationRowQ8_1(a.data(), want.data(), n);
    } else {
      want = Quantize(k.dot_type, a);
    }
    EXPECT_EQ(qa, want) << DTypeName(t);
    EXPECT_EQ(k.vec_dot(qw.data(), qa.data(), n), ref::VecDot(t, qw.data(), qa.data(), n));
    std::vector<float> deq(n);
    k.dequantize(qw.data(), deq.data(), n);
    EXPECT_EQ(deq, Dequantize(t, qw, n)) << DTypeName(t);
  }
}

}  // namespace
}  // namespace kiln::kernels
