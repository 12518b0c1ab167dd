// The neon tables' f32 layer ops: RMSNorm, RoPE, gated activations (SwiGLU, GeGLU, ggml's f16
// GELU table) and the residual add, with the contracts of kernels/norm.h, rope.h and
// activation.h. Like ref they compute in double (2-lane float64x2 here) in another order, so
// results equal ref's except for double-rounding corners; the table GELU and the add are bit
// for bit. Attention is in attention.cc.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "base/check.h"
#include "kernels/cpu/neon/neon_kernels.h"
#include "tensor/fp16.h"

namespace kiln::kernels::neon {
namespace {

inline float64x2_t Lo(float32x4_t v) { return vcvt_f64_f32(vget_low_f32(v)); }
inline float64x2_t Hi(float32x4_t v) { return vcvt_high_f64_f32(v); }

}  // namespace

// ─── RMSNorm: sum of squares in double (4 chains of 2), scaling in float in ref's order ───
void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n, float* out) {
  float64x2_t s[4] = {vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0)};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
    const float64x2_t d[4] = {Lo(a), Hi(a), Lo(b), Hi(b)};
    for (int j = 0; j < 4; ++j) s[j] = vaddq_f64(s[j], vmulq_f64(d[j], d[j]));
  }
  double sum_sq = vaddvq_f64(vaddq_f64(vaddq_f64(s[0], s[1]), vaddq_f64(s[2], s[3])));
  for (; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  const float32x4_t off = vdupq_n_f32(w_offset);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t xs = vmulq_n_f32(vld1q_f32(x + i), inv_rms);
    vst1q_f32(out + i, vmulq_f32(xs, vaddq_f32(vld1q_f32(w + i), off)));
  }
  for (; i < n; ++i) out[i] = x[i] * inv_rms * (w[i] + w_offset);
}

// ─── RoPE: cos/sin once per token (double, like ref), rotations in double ────────────────
void Rope(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,
          RopeStyle style) {
  const int half = head_dim / 2;
  KILN_CHECK(half <= kMaxAttentionHeadDim / 2) << "head_dim " << head_dim;
  alignas(16) double c[kMaxAttentionHeadDim / 2], s[kMaxAttentionHeadDim / 2];
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    c[i] = std::cos(static_cast<double>(angle));
    s[i] = std::sin(static_cast<double>(angle));
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    int i = 0;
    if (style == RopeStyle::kNeox) {
      for (; i + 2 <= half; i += 2) {
        const float64x2_t a = vcvt_f64_f32(vld1_f32(v + i));
        const float64x2_t b = vcvt_f64_f32(vld1_f32(v + half + i));
        const float64x2_t cv = vld1q_f64(c + i), sv = vld1q_f64(s + i);
        vst1_f32(v + i, vcvt_f32_f64(vsubq_f64(vmulq_f64(a, cv), vmulq_f64(b, sv))));
        vst1_f32(v + half + i, vcvt_f32_f64(vaddq_f64(vmulq_f64(a, sv), vmulq_f64(b, cv))));
      }
      for (; i < half; ++i) {
        const double a = v[i], b = v[i + half];
        v[i] = static_cast<float>(a * c[i] - b * s[i]);
        v[i + half] = static_cast<float>(a * s[i] + b * c[i]);
      }
    } else {
      for (; i + 2 <= half; i += 2) {  // pairs (2i, 2i+1) and (2i+2, 2i+3): de-interleave
        const float32x2x2_t p = vld2_f32(v + 2 * i);
        const float64x2_t a = vcvt_f64_f32(p.val[0]), b = vcvt_f64_f32(p.val[1]);
        const float64x2_t cv = vld1q_f64(c + i), sv = vld1q_f64(s + i);
        float32x2x2_t r;
        r.val[0] = vcvt_f32_f64(vsubq_f64(vmulq_f64(a, cv), vmulq_f64(b, sv)));
        r.val[1] = vcvt_f32_f64(vaddq_f64(vmulq_f64(a, sv), vmulq_f64(b, cv)));
        vst2_f32(v + 2 * i, r);
      }
      for (; i < half; ++i) {
        const double a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = static_cast<float>(a * c[i] - b * s[i]);
        v[2 * i + 1] = static_cast<float>(a * s[i] + b * c[i]);
      }
    }
  }
}

// ─── Gated activations ───────────────────────────────────────────────────────────────────
namespace {

// exp in double: 2^k · e^r, |r| <= ln2/2, Taylor to degree 13 (relative error ~1e-16), so
// the float results equal ref's libm-based ones except for double-rounding corners.
float64x2_t ExpD(float64x2_t x) {
  x = vminq_f64(vmaxq_f64(x, vdupq_n_f64(-708.0)), vdupq_n_f64(708.0));
  const float64x2_t k = vrndnq_f64(vmulq_n_f64(x, 1.4426950408889634));
  float64x2_t r = vsubq_f64(x, vmulq_n_f64(k, 6.93147180369123816490e-01));
  r = vsubq_f64(r, vmulq_n_f64(k, 1.90821492927058770002e-10));
  float64x2_t p = vdupq_n_f64(1.0 / 6227020800.0);
  constexpr double kInvFact[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                 1.0 / 362880.0,    1.0 / 40320.0,    1.0 / 5040.0,
                                 1.0 / 720.0,       1.0 / 120.0,      1.0 / 24.0,
                                 1.0 / 6.0,         0.5,              1.0,
                                 1.0};
  for (double f : kInvFact) p = vaddq_f64(vmulq_f64(p, r), vdupq_n_f64(f));
  // p * 2^k in two steps (k1 + k2 = k) so neither power leaves the normal range.
  const int64x2_t ki = vcvtq_s64_f64(k);
  const int64x2_t k1 = vshrq_n_s64(ki, 1);
  const int64x2_t k2 = vsubq_s64(ki, k1);
  auto pow2 = [](int64x2_t e) {
    return vreinterpretq_f64_s64(vshlq_n_s64(vaddq_s64(e, vdupq_n_s64(1023)), 52));
  };
  return vmulq_f64(vmulq_f64(p, pow2(k1)), pow2(k2));
}

// act(x) for 2 lanes in double: SiLU x / (1 + e^-x), or GELU-tanh as x e / (e + 1) with
// e = exp(2y), y = sqrt(2/pi) (x + 0.044715 x^3).
float64x2_t ActD(bool silu, float64x2_t x) {
  const float64x2_t one = vdupq_n_f64(1.0);
  if (silu) return vdivq_f64(x, vaddq_f64(one, ExpD(vnegq_f64(x))));
  const float64x2_t x3 = vmulq_f64(vmulq_f64(x, x), x);
  const float64x2_t y = vmulq_n_f64(vaddq_f64(x, vmulq_n_f64(x3, 0.044715)), 0.7978845608028654);
  const float64x2_t yc = vminq_f64(vmaxq_f64(y, vdupq_n_f64(-40.0)), vdupq_n_f64(40.0));
  const float64x2_t e = ExpD(vmulq_n_f64(yc, 2.0));
  const float64x2_t a = vdivq_f64(vmulq_f64(x, e), vaddq_f64(e, one));
  // Below -19.07 ref's tanh(y) rounds to -1 in double and its result is x * 0.
  return vbslq_f64(vcltq_f64(y, vdupq_n_f64(-19.07)), vmulq_n_f64(x, 0.0), a);
}

// ggml's f16 GELU table as floats: the float formula at every f16 value, rounded to f16 (the
// same expression as ref's, both compiled without FMA contraction, so the same bits).
const float* GeluF16Table() {
  static const float* table = [] {
    static float t[1 << 16];
    for (uint32_t h = 0; h < (1u << 16); ++h) {
      const float x = Fp16ToFp32(static_cast<uint16_t>(h));
      constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
      constexpr float kCoefA = 0.044715f;
      const float g = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
      t[h] = Fp16ToFp32(Fp32ToFp16(g));
    }
    return t;
  }();
  return table;
}

float GeluTableScalar(const float* table, float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return table[Fp32ToFp16(x)];
}

void GeluTableRow(const float* gate, const float* up, int64_t n, float* out) {
  const float* table = GeluF16Table();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t x = vld1q_f32(gate + i);
    uint16_t h[4];
    vst1_u16(h, vreinterpret_u16_f16(vcvt_f16_f32(x)));  // round to nearest even
    float g[4] = {table[h[0]], table[h[1]], table[h[2]], table[h[3]]};
    float32x4_t gv = vld1q_f32(g);
    gv = vbslq_f32(vcleq_f32(x, vdupq_n_f32(-10.0f)), vdupq_n_f32(0.0f), gv);
    gv = vbslq_f32(vcgeq_f32(x, vdupq_n_f32(10.0f)), x, gv);
    vst1q_f32(out + i, vmulq_f32(gv, vld1q_f32(up + i)));
  }
  for (; i < n; ++i) out[i] = GeluTableScalar(table, gate[i]) * up[i];
}

}  // namespace

void GatedActivation(Activation act, const float* gate, const float* up, int64_t n, float* out) {
  if (act == Activation::kGeluTanhF16Table) return GeluTableRow(gate, up, n, out);
  const bool silu = act == Activation::kSilu;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t g = vld1q_f32(gate + i);
    // ref: float(act) * up in float. Loads before stores: out may alias gate or up.
    const float32x4_t u = vld1q_f32(up + i);
    const float32x4_t a = vcombine_f32(vcvt_f32_f64(ActD(silu, Lo(g))),
                                       vcvt_f32_f64(ActD(silu, Hi(g))));
    vst1q_f32(out + i, vmulq_f32(a, u));
  }
  for (; i < n; ++i) {  // the tail with libm, as ref
    const double x = gate[i];
    float a;
    if (silu) {
      a = static_cast<float>(x / (1.0 + std::exp(-x)));
    } else {
      const double k = std::sqrt(2.0 / 3.14159265358979323846);
      a = static_cast<float>(0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x))));
    }
    out[i] = a * up[i];
  }
}

void Add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vaddq_f32(vld1q_f32(x + i), vld1q_f32(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

}  // namespace kiln::kernels::neon
