// Reference forward-pass kernels against straightforward double-precision formulas and
// against identities that tie them to the published definitions (RoPE layouts, llama3 scaling).
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "tensor/fp16.h"

namespace kiln::kernels::ref {
namespace {

std::vector<float> RandomVec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(RmsNormTest, MatchesDoubleFormulaWithAndWithoutOffset) {
  for (int64_t n : {1, 7, 64, 577}) {
    auto x = RandomVec(n, 1 + n, 3.0f), w = RandomVec(n, 2 + n);
    for (float offset : {0.0f, 1.0f}) {
      std::vector<float> out(n);
      RmsNorm(x.data(), w.data(), offset, 1e-6f, n, out.data());
      double ms = 0;
      for (float v : x) ms += double(v) * v;
      ms /= n;
      for (int64_t i = 0; i < n; ++i) {
        double want = x[i] / std::sqrt(ms + 1e-6) * (double(w[i]) + offset);
        EXPECT_NEAR(out[i], want, 1e-5 * (1 + std::abs(want))) << n << " " << i;
      }
    }
  }
}

TEST(RmsNormTest, InPlace) {
  auto x = RandomVec(33, 5), w = RandomVec(33, 6);
  std::vector<float> out(33);
  RmsNorm(x.data(), w.data(), 0, 1e-5f, 33, out.data());
  RmsNorm(x.data(), w.data(), 0, 1e-5f, 33, x.data());
  EXPECT_EQ(x, out);
}

TEST(RopeTest, InvFreqPlain) {
  std::vector<float> f(8);
  RopeInvFreq(16, 10000.0f, RopeScaling{}, nullptr, f.data());
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(f[i], float(std::pow(10000.0, -2.0 * i / 16)));
}

// transformers' _compute_llama3_parameters, written as its masks (Llama 3.1 8B's values).
TEST(RopeTest, InvFreqLlama3MatchesPublishedFormula) {
  RopeScaling s{RopeScalingType::kLlama3, 8.0f, 1.0f, 4.0f, 8192};
  const int d = 128;
  std::vector<float> f(d / 2), factors(d / 2, 2.0f), f2(d / 2);
  RopeInvFreq(d, 500000.0f, s, nullptr, f.data());
  RopeInvFreq(d, 500000.0f, s, factors.data(), f2.data());
  for (int i = 0; i < d / 2; ++i) {
    double inv = 1.0 / std::pow(500000.0, 2.0 * i / d);
    double wavelen = 2 * std::numbers::pi / inv;
    double low_wl = 8192 / 1.0, high_wl = 8192 / 4.0;
    double llama = wavelen > low_wl ? inv / 8 : inv;
    double smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0);
    double smoothed = (1 - smooth) * llama / 8 + smooth * llama;
    bool medium = !(wavelen < high_wl) && !(wavelen > low_wl);
    double want = medium ? smoothed : llama;
    EXPECT_NEAR(f[i], want, 1e-6 * want) << i;
    EXPECT_NEAR(f2[i], want / 2, 1e-6 * want) << i;
  }
  // Some of each band exists for these values.
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[d / 2 - 1], 1.0 / std::pow(500000.0, (d - 2.0) / d) / 8, 1e-12);
}

TEST(RopeTest, MatchesRotationFormulaBothStyles) {
  const int n_heads = 3, d = 8;
  std::vector<float> inv(d / 2);
  RopeInvFreq(d, 100.0f, RopeScaling{}, nullptr, inv.data());
  auto x = RandomVec(n_heads * d, 9);
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kNeox}) {
    auto y = x;
    Rope(y.data(), n_heads, d, inv.data(), 7, style);
    for (int h = 0; h < n_heads; ++h) {
      for (int i = 0; i < d / 2; ++i) {
        int i0 = style == RopeStyle::kNeox ? i : 2 * i;
        int i1 = style == RopeStyle::kNeox ? i + d / 2 : 2 * i + 1;
        double a = x[h * d + i0], b = x[h * d + i1], t = 7.0 * inv[i];
        EXPECT_NEAR(y[h * d + i0], a * std::cos(t) - b * std::sin(t), 1e-5);
        EXPECT_NEAR(y[h * d + i1], a * std::sin(t) + b * std::cos(t), 1e-5);
      }
    }
  }
}

// llama.cpp's converter permutes Llama Q/K rows so that interleaved RoPE on the permuted
// vector equals NeoX RoPE on the original: row (h, 2i + j) of GGUF = row (h, i + j*d/2) of HF.
TEST(RopeTest, InterleavedOnPermutedEqualsNeox) {
  const int n_heads = 2, d = 16;
  std::vector<float> inv(d / 2);
  RopeInvFreq(d, 10000.0f, RopeScaling{}, nullptr, inv.data());
  auto hf = RandomVec(n_heads * d, 11);
  std::vector<float> gguf(hf.size());
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < d / 2; ++i)
      for (int j = 0; j < 2; ++j) gguf[h * d + 2 * i + j] = hf[h * d + i + j * d / 2];
  Rope(hf.data(), n_heads, d, inv.data(), 123, RopeStyle::kNeox);
  Rope(gguf.data(), n_heads, d, inv.data(), 123, RopeStyle::kInterleaved);
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < d / 2; ++i)
      for (int j = 0; j < 2; ++j)
        EXPECT_FLOAT_EQ(gguf[h * d + 2 * i + j], hf[h * d + i + j * d / 2]);
}

TEST(ActivationTest, MatchesDefinitions) {
  auto g = RandomVec(100, 3, 4.0f), u = RandomVec(100, 4);
  std::vector<float> out(100);
  GatedActivation(Activation::kSilu, g.data(), u.data(), 100, out.data());
  for (int i = 0; i < 100; ++i) {
    double s = g[i] / (1 + std::exp(-double(g[i])));
    EXPECT_NEAR(out[i], s * u[i], 1e-6 * (1 + std::abs(s * u[i])));
  }
  GatedActivation(Activation::kGeluTanh, g.data(), u.data(), 100, out.data());
  for (int i = 0; i < 100; ++i) {
    double x = g[i];
    double gl = 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    EXPECT_NEAR(out[i], gl * u[i], 1e-6 * (1 + std::abs(gl * u[i])));
  }
  EXPECT_NEAR(GeluTanh(1.0f), 0.8411920071f, 1e-6);  // torch gelu(1, approximate='tanh')
  EXPECT_NEAR(Silu(1.0f), 0.7310585786f, 1e-6);
}

struct KvStore {
  // [n_pos][n_kv_heads][d], f32 or f16.
  KvStore(DType dt, int n_pos, int n_kv, int d, uint32_t seed)
      : k32(RandomVec(size_t(n_pos) * n_kv * d, seed)), v32(RandomVec(k32.size(), seed + 1)) {
    view.dtype = dt;
    view.head_dim = d;
    size_t eb = dt == DType::kF16 ? 2 : 4;
    view.pos_stride = size_t(n_kv) * d * eb;
    kb.resize(k32.size() * eb);
    vb.resize(k32.size() * eb);
    for (size_t i = 0; i < k32.size(); ++i) {
      if (dt == DType::kF16) {
        uint16_t hk = Fp32ToFp16(k32[i]), hv = Fp32ToFp16(v32[i]);
        k32[i] = Fp16ToFp32(hk);
        v32[i] = Fp16ToFp32(hv);
        std::memcpy(&kb[2 * i], &hk, 2);
        std::memcpy(&vb[2 * i], &hv, 2);
      } else {
        std::memcpy(&kb[4 * i], &k32[i], 4);
        std::memcpy(&vb[4 * i], &v32[i], 4);
      }
    }
    view.k = kb.data();
    view.v = vb.data();
  }
  std::vector<float> k32, v32;
  std::vector<uint8_t> kb, vb;
  KvView view;
};

// A paged view's slot of position p: block_ids[p / block_tokens] * block_tokens + the offset in
// the block, for block sizes of the pool's 16 and others.
TEST(KvViewTest, PagedSlotIsTheBlockTablesSlot) {
  const std::vector<int32_t> table = {7, 0, 12, 3, 5, 9, 1, 2, 4, 6, 8, 10, 11, 13, 14, 15};
  for (int32_t bt : {1, 3, 4, 5, 16, 32}) {
    KvView kv;
    kv.block_ids = table.data();
    kv.block_tokens = bt;
    for (int32_t p = 0; p < bt * static_cast<int32_t>(table.size()); ++p) {
      ASSERT_EQ(kv.Slot(p), static_cast<size_t>(table[p / bt]) * bt + p % bt) << bt << " " << p;
    }
  }
  KvView flat;
  EXPECT_EQ(flat.Slot(1234), 1234u);
}

TEST(AttentionTest, MatchesNaiveSoftmax) {
  const int n_pos = 20, n_kv = 2, d = 16;
  for (DType dt : {DType::kF32, DType::kF16}) {
    KvStore kv(dt, n_pos, n_kv, d, 21);
    auto q = RandomVec(d, 22);
    for (int head : {0, 1}) {
      for (auto [b, e] : {std::pair{0, 20}, std::pair{5, 13}, std::pair{19, 20}}) {
        std::vector<float> scores(e - b), out(d);
        AttentionHead(q.data(), kv.view, head, b, e, 0.25f, scores.data(), out.data());
        std::vector<double> w;
        double mx = -1e300, sum = 0;
        for (int p = b; p < e; ++p) {
          double s = 0;
          for (int i = 0; i < d; ++i) s += q[i] * double(kv.k32[(p * n_kv + head) * d + i]);
          w.push_back(s * 0.25);
          mx = std::max(mx, s * 0.25);
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int i = 0; i < d; ++i) {
          double want = 0;
          for (int p = b; p < e; ++p) want += w[p - b] / sum * kv.v32[(p * n_kv + head) * d + i];
          EXPECT_NEAR(out[i], want, 1e-5) << int(dt) << " " << head << " " << b << " " << i;
        }
      }
    }
  }
}

TEST(AttentionTest, SinglePositionReturnsItsValue) {
  KvStore kv(DType::kF32, 4, 1, 8, 30);
  auto q = RandomVec(8, 31);
  std::vector<float> scores(1), out(8);
  AttentionHead(q.data(), kv.view, 0, 2, 3, 1.0f, scores.data(), out.data());
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(out[i], kv.v32[2 * 8 + i]);
}

// llama.cpp's rounding: the naive softmax of the test above with q and the probabilities
// rounded to f16 (double sums), which the lane-ordered float sums must match to float error.
TEST(AttentionTest, RoundQpMatchesNaiveF16Rounding) {
  const int n_pos = 70, n_kv = 2, d = 64;  // 64: one full AVX-512 lane group; 70: a tail too
  KvStore kv(DType::kF16, n_pos, n_kv, d, 41);
  auto q = RandomVec(d, 42);
  auto r16 = [](double x) { return double(Fp16ToFp32(Fp32ToFp16(static_cast<float>(x)))); };
  for (auto [b, e] : {std::pair{0, 70}, std::pair{3, 9}, std::pair{69, 70}}) {
    std::vector<float> scores(e - b), out(d), exact(d);
    AttentionHead(q.data(), kv.view, 1, b, e, 0.125f, scores.data(), out.data(), true);
    AttentionHead(q.data(), kv.view, 1, b, e, 0.125f, scores.data(), exact.data(), false);
    std::vector<double> w;
    double mx = -1e300, sum = 0;
    for (int p = b; p < e; ++p) {
      double s = 0;
      for (int i = 0; i < d; ++i) s += r16(q[i]) * kv.k32[(p * n_kv + 1) * d + i];
      w.push_back(s * 0.125);
      mx = std::max(mx, s * 0.125);
    }
    for (double& x : w) sum += (x = std::exp(x - mx));
    double max_diff_exact = 0;
    for (int i = 0; i < d; ++i) {
      double want = 0;
      for (int p = b; p < e; ++p) want += r16(w[p - b] / sum) * kv.v32[(p * n_kv + 1) * d + i];
      EXPECT_NEAR(out[i], want, 2e-6) << b << " " << i;
      max_diff_exact = std::max(max_diff_exact, std::abs(double(out[i]) - exact[i]));
    }
    if (e - b > 1) EXPECT_GT(max_diff_exact, 1e-5) << "rounding had no effect";
  }
  // f32 views ignore the flag.
  KvStore kv32(DType::kF32, n_pos, n_kv, d, 41);
  std::vector<float> scores(n_pos), a(d), c(d);
  AttentionHead(q.data(), kv32.view, 0, 0, n_pos, 0.125f, scores.data(), a.data(), true);
  AttentionHead(q.data(), kv32.view, 0, 0, n_pos, 0.125f, scores.data(), c.data(), false);
  EXPECT_EQ(a, c);
}

TEST(GgmlF16DotTest, LaneOrderAndTail) {
  // Below one lane group everything is summed in double, exactly like a double loop.
  auto x = RandomVec(200, 51), y = RandomVec(200, 52);
  double want = 0;
  for (int i = 0; i < 40; ++i) want += double(x[i] * y[i]);
  EXPECT_EQ(GgmlF16Dot(x.data(), y.data(), 40), static_cast<float>(want));
  // Lane order: 1 in lane 0 then 2^-24 in lanes 1..63 folds to 1 + 63 * 2^-24 only if
  // the small terms meet each other before the large one (they do in the tree).
  std::vector<float> a(64, std::ldexp(1.0f, -24)), ones(64, 1.0f);
  a[0] = 1.0f;
  const float got = GgmlF16Dot(a.data(), ones.data(), 64);
  EXPECT_GT(got, 1.0f);
  want = 0;
  for (int i = 0; i < 200; ++i) want += double(x[i] * y[i]);
  EXPECT_NEAR(GgmlF16Dot(x.data(), y.data(), 200), want, 1e-5);
}

TEST(ActivationTest, GeluF16TableIsRoundedGelu) {
  EXPECT_EQ(GeluTanhF16Table(-10.0f), 0.0f);
  EXPECT_EQ(GeluTanhF16Table(12.5f), 12.5f);
  for (float x : {-3.3f, -0.7f, -0.01f, 0.0f, 0.37f, 1.0f, 2.71828f, 9.99f}) {
    const float xh = Fp16ToFp32(Fp32ToFp16(x));
    const float want = Fp16ToFp32(Fp32ToFp16(GeluTanh(xh)));  // f16 table entry, ±1 f16 ulp
    EXPECT_NEAR(GeluTanhF16Table(x), want, std::abs(want) * 1e-3 + 1e-7) << x;
  }
  std::vector<float> g = {0.5f, -1.25f}, u = {2.0f, 3.0f}, out(2);
  GatedActivation(Activation::kGeluTanhF16Table, g.data(), u.data(), 2, out.data());
  EXPECT_EQ(out[0], GeluTanhF16Table(0.5f) * 2.0f);
  EXPECT_EQ(out[1], GeluTanhF16Table(-1.25f) * 3.0f);
}

}  // namespace
}  // namespace kiln::kernels::ref
