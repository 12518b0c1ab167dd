// Reference kernels of the K super-block types (Q4_K, Q5_K, Q6_K and the activation type
// Q8_K). The quantizers follow ggml's published reference algorithm (a weighted
// least-squares search over candidate scales per sub-block, then 6/8-bit quantization of the
// sub-scales and a final re-quantization against the rounded scales), with float expressions
// in ggml's order so blocks are byte-identical. Compile without FP contraction.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/ref/quant_rows.h"
#include "kernels/ref/quant_util.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels::ref {
namespace {

using internal::LoadBlock;
using internal::NearestInt;
using internal::NumBlocks;
using internal::StoreBlock;

constexpr float kGroupMaxEps = 1e-15f;  // below this a sub-block counts as all zero
constexpr int kSubBlocks32 = kQK_K / 32;
constexpr int kSubBlocks16 = kQK_K / 16;

// Search parameters of the asymmetric (scale + min) sub-block fit.
struct FitParams {
  int nmax;      // quants in [0, nmax]
  float rmin;    // first candidate: nmax + rmin steps over the range
  float rdelta;  // candidate step
  int nstep;     // candidates: nstep + 1
};
constexpr FitParams kFitQ4_K = {15, -1.0f, 0.1f, 20};
constexpr FitParams kFitQ5_K = {31, -0.5f, 0.1f, 15};

// Fits x[i] ≈ scale * L[i] - the_min (min ≤ 0 clamped away) minimizing the weighted squared
// error, trying nstep + 1 candidate inverse scales and refining each by least squares.
// Returns scale; writes L and *the_min (≥ 0). ggml's make_qkx2_quants (use_mad = false).
float FitScaleMin(int n, const float* x, const float* w, const FitParams& p, uint8_t* L,
                  float* the_min) {
  float min = x[0];
  float max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.0f;
  }
  const int nmax = p.nmax;
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = NearestInt(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = diff * diff;
    best_error += w[i] * diff;
  }
  uint8_t laux[32];
  for (int is = 0; is <= p.nstep; ++is) {
    iscale = (p.rmin + p.rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, NearestInt(iscale * (x[i] - min))));
      laux[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float cur_error = 0;
    for (int i = 0; i < n; ++i) {
      float diff = this_scale * static_cast<float>(laux[i]) + this_min - x[i];
      diff = diff * diff;
      cur_error += w[i] * diff;
    }
    if (cur_error < best_error) {
      std::copy(laux, laux + n, L);
      best_error = cur_error;
      scale = this_scale;
      min = this_min;
    }
  }
  *the_min = -min;
  return scale;
}

// Symmetric fit x[i] ≈ scale * (L[i] - nmax) with weights x², trying 19 candidate scales
// (ggml's make_qx_quants with rmse_type 1 and no importance weights). L in [0, 2 nmax).
float FitScaleSymmetric(int n, int nmax, const float* x, int8_t* L) {
  float max = 0;
  float amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  auto sums = [&](float iscale, float* sumlx, float* suml2, bool write_l) {
    *sumlx = 0;
    *suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(-nmax, std::min(nmax - 1, NearestInt(iscale * x[i])));
      if (write_l) L[i] = static_cast<int8_t>(l + nmax);
      const float w = x[i] * x[i];
      const float fl = static_cast<float>(l);
      *sumlx += w * x[i] * fl;
      *suml2 += w * fl * fl;
    }
  };
  float sumlx, suml2;
  sums(static_cast<float>(-nmax) / max, &sumlx, &suml2, /*write_l=*/true);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, &sumlx, &suml2, /*write_l=*/false);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      sums(iscale, &sumlx, &suml2, /*write_l=*/true);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// 6-bit sub-scale j and sub-min j of a Q4_K/Q5_K scales array (layout in quant_blocks.h).
void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void PackScaleMinK4(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
  for (int j = 0; j < kSubBlocks32; ++j) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      q[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      q[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}

// The shared part of Q4_K and Q5_K quantization of one super-block: sub-block fits,
// 6-bit sub-scales/mins, and quants L[256] in [0, nmax] re-fitted to the rounded scales.
void QuantizeScaleMinK(const float* x, const FitParams& p, uint16_t* d_out, uint16_t* dmin_out,
                       uint8_t* scales_out, uint8_t* L) {
  float scales[kSubBlocks32];
  float mins[kSubBlocks32];
  float max_scale = 0;
  float max_min = 0;
  for (int j = 0; j < kSubBlocks32; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    float weights[32];
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = FitScaleMin(32, xs, weights, p, L + 32 * j, &mins[j]);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[kSubBlocks32];
  uint8_t lm[kSubBlocks32];
  for (int j = 0; j < kSubBlocks32; ++j) {
    ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_min * mins[j])));
  }
  PackScaleMinK4(ls, lm, scales_out);
  *d_out = Fp32ToFp16(max_scale / 63.f);
  *dmin_out = Fp32ToFp16(max_min / 63.f);
  for (int j = 0; j < kSubBlocks32; ++j) {
    uint8_t sc, m;
    GetScaleMinK4(j, scales_out, &sc, &m);
    const float d = Fp16ToFp32(*d_out) * static_cast<float>(sc);
    if (d == 0) continue;  // keep the fit's quants, as ggml does
    const float dm = Fp16ToFp32(*dmin_out) * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = NearestInt((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(p.nmax, l)));
    }
  }
}

// Q4_K/Q5_K quants of a super-block in element order, with per-element (scale, min) indices.
void UnpackQ4_KQuants(const uint8_t* qs, int8_t* q) {
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      q[64 * g + l] = static_cast<int8_t>(qs[32 * g + l] & 0xF);
      q[64 * g + 32 + l] = static_cast<int8_t>(qs[32 * g + l] >> 4);
    }
  }
}

void AddQ5_KHighBits(const uint8_t* qh, int8_t* q) {
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      if (qh[l] & (1u << (2 * g))) q[64 * g + l] += 16;
      if (qh[l] & (2u << (2 * g))) q[64 * g + 32 + l] += 16;
    }
  }
}

void UnpackQ6_KQuants(const BlockQ6_K& b, int8_t* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    int8_t* out = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      out[l + 0] = static_cast<int8_t>(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      out[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      out[l + 64] = static_cast<int8_t>(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      out[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

// ggml's generic K dot product keeps 8 float lane sums (element index mod 8) across all
// super-blocks and adds them at the end; `scale_of(e)` is the integer sub-scale of element e.
template <typename ScaleOf>
void AccumulateLanes(const int8_t* q, const int8_t* q8, ScaleOf scale_of, float d,
                     float* lane_sums) {
  int32_t aux32[8] = {};
  for (int e = 0; e < kQK_K; ++e) aux32[e % 8] += scale_of(e) * (q8[e] * q[e]);
  for (int l = 0; l < 8; ++l) lane_sums[l] += d * static_cast<float>(aux32[l]);
}

// Q4_K/Q5_K · Q8_K; `high_bits` adds Q5_K's fifth bit.
template <typename Block>
float DotScaleMinK(const void* w, const void* a, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  float lane_sums[8] = {};
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    const auto x = LoadBlock<Block>(w, i);
    const auto y = LoadBlock<BlockQ8_K>(a, i);
    int8_t q[kQK_K];
    UnpackQ4_KQuants(x.qs, q);
    if constexpr (std::is_same_v<Block, BlockQ5_K>) AddQ5_KHighBits(x.qh, q);
    uint8_t sc[kSubBlocks32], mn[kSubBlocks32];
    for (int j = 0; j < kSubBlocks32; ++j) GetScaleMinK4(j, x.scales, &sc[j], &mn[j]);
    int sumi = 0;
    for (int j = 0; j < kSubBlocks16; ++j) sumi += y.bsums[j] * mn[j / 2];
    AccumulateLanes(q, y.qs, [&](int e) { return static_cast<int>(sc[e / 32]); },
                    Fp16ToFp32(x.d) * y.d, lane_sums);
    const float dmin = Fp16ToFp32(x.dmin) * y.d;
    sum -= dmin * static_cast<float>(sumi);
  }
  for (float s : lane_sums) sum += s;
  return sum;
}

}  // namespace

// ── Quantize ────────────────────────────────────────────────────────────────────────────

void QuantizeRowQ4_K(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    BlockQ4_K b;
    uint8_t L[kQK_K];
    QuantizeScaleMinK(x, kFitQ4_K, &b.d, &b.dmin, b.scales, L);
    for (int g = 0; g < 4; ++g) {
      for (int l = 0; l < 32; ++l) {
        b.qs[32 * g + l] = static_cast<uint8_t>(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
      }
    }
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ5_K(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    BlockQ5_K b;
    uint8_t L[kQK_K];
    QuantizeScaleMinK(x, kFitQ5_K, &b.d, &b.dmin, b.scales, L);
    std::memset(b.qh, 0, sizeof(b.qh));
    for (int g = 0; g < 4; ++g) {
      for (int l = 0; l < 32; ++l) {
        int l1 = L[64 * g + l];
        int l2 = L[64 * g + 32 + l];
        if (l1 > 15) {
          l1 -= 16;
          b.qh[l] |= static_cast<uint8_t>(1u << (2 * g));
        }
        if (l2 > 15) {
          l2 -= 16;
          b.qh[l] |= static_cast<uint8_t>(2u << (2 * g));
        }
        b.qs[32 * g + l] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
    }
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ6_K(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    BlockQ6_K b;
    std::memset(&b, 0, sizeof(b));
    int8_t L[kQK_K];
    float scales[kSubBlocks16];
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < kSubBlocks16; ++ib) {
      scales[ib] = FitScaleSymmetric(16, 32, x + 16 * ib, L + 16 * ib);
      const float abs_scale = std::fabs(scales[ib]);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scales[ib];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {  // all (near) zero: an all-zero block
      StoreBlock(y, i, b);
      continue;
    }
    const float iscale = -128.f / max_scale;
    b.d = Fp32ToFp16(1 / iscale);
    for (int ib = 0; ib < kSubBlocks16; ++ib) {
      b.scales[ib] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[ib])));
    }
    for (int j = 0; j < kSubBlocks16; ++j) {
      const float d = Fp16ToFp32(b.d) * static_cast<float>(b.scales[j]);
      if (d == 0) continue;  // keep the fit's quants, as ggml does
      for (int ii = 0; ii < 16; ++ii) {
        const int l = std::max(-32, std::min(31, NearestInt(x[16 * j + ii] / d)));
        L[16 * j + ii] = static_cast<int8_t>(l + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* Lh = L + 128 * h;
      uint8_t* ql = b.ql + 64 * h;
      uint8_t* qh = b.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = Lh[l + 0] & 0xF, q2 = Lh[l + 32] & 0xF;
        const uint8_t q3 = Lh[l + 64] & 0xF, q4 = Lh[l + 96] & 0xF;
        ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                     ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ8_K(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    BlockQ8_K b;
    std::memset(&b, 0, sizeof(b));  // all-zero input: d = 0, quants and sums 0
    float max = 0;
    float amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax != 0) {
      const float iscale = -127.f / max;
      for (int j = 0; j < kQK_K; ++j) {
        b.qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
      }
      for (int j = 0; j < kSubBlocks16; ++j) {
        int sum = 0;
        for (int ii = 0; ii < 16; ++ii) sum += b.qs[16 * j + ii];
        b.bsums[j] = static_cast<int16_t>(sum);
      }
      b.d = 1 / iscale;
    }
    StoreBlock(y, i, b);
  }
}

// ── Dequantize ──────────────────────────────────────────────────────────────────────────

namespace {

template <typename Block>
void DequantizeScaleMinK(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const auto b = LoadBlock<Block>(x, i);
    int8_t q[kQK_K];
    UnpackQ4_KQuants(b.qs, q);
    if constexpr (std::is_same_v<Block, BlockQ5_K>) AddQ5_KHighBits(b.qh, q);
    const float d = Fp16ToFp32(b.d);
    const float min = Fp16ToFp32(b.dmin);
    for (int j = 0; j < kSubBlocks32; ++j) {
      uint8_t sc, m;
      GetScaleMinK4(j, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) y[32 * j + l] = d1 * static_cast<float>(q[32 * j + l]) - m1;
    }
  }
}

}  // namespace

void DequantizeRowQ4_K(const void* x, float* y, int64_t n) {
  DequantizeScaleMinK<BlockQ4_K>(x, y, n);
}

void DequantizeRowQ5_K(const void* x, float* y, int64_t n) {
  DequantizeScaleMinK<BlockQ5_K>(x, y, n);
}

void DequantizeRowQ6_K(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const auto b = LoadBlock<BlockQ6_K>(x, i);
    int8_t q[kQK_K];
    UnpackQ6_KQuants(b, q);
    const float d = Fp16ToFp32(b.d);
    for (int e = 0; e < kQK_K; ++e) {
      y[e] = d * static_cast<float>(b.scales[e / 16]) * static_cast<float>(q[e]);
    }
  }
}

void DequantizeRowQ8_K(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const auto b = LoadBlock<BlockQ8_K>(x, i);
    for (int j = 0; j < kQK_K; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
  }
}

// ── Dot products ────────────────────────────────────────────────────────────────────────

float VecDotQ4_KQ8_K(const void* w, const void* a, int64_t n) {
  return DotScaleMinK<BlockQ4_K>(w, a, n);
}

float VecDotQ5_KQ8_K(const void* w, const void* a, int64_t n) {
  return DotScaleMinK<BlockQ5_K>(w, a, n);
}

float VecDotQ6_KQ8_K(const void* w, const void* a, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK_K);
  float lane_sums[8] = {};
  for (int64_t i = 0; i < nb; ++i) {
    const auto x = LoadBlock<BlockQ6_K>(w, i);
    const auto y = LoadBlock<BlockQ8_K>(a, i);
    int8_t q[kQK_K];
    UnpackQ6_KQuants(x, q);
    AccumulateLanes(q, y.qs, [&](int e) { return static_cast<int>(x.scales[e / 16]); },
                    Fp16ToFp32(x.d) * y.d, lane_sums);
  }
  float sum = 0;
  for (float s : lane_sums) sum += s;
  return sum;
}

}  // namespace kiln::kernels::ref
