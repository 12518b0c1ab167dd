// Scalar reproductions of ggml-cpu's layer arithmetic (contract in kernels/ggml_exact.h).
// Fused multiply-adds are explicit std::fma calls and nothing else is contracted (ISO C++
// mode), so every other operation rounds exactly where the C++ says. The public functions are
// cloned for x86-64-v3 (chosen at load time on CPUs with FMA) so that std::fma is one
// instruction there instead of a libm call; both clones compute the same bits.
#include "kernels/ggml_exact.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "tensor/fp16.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KILN_GGML_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define KILN_GGML_CLONES
#endif
#define KILN_GGML_INLINE inline __attribute__((always_inline))
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace kiln::kernels::ggml {
namespace {

// 2^e as a float, for e in [-126, 127].
KILN_GGML_INLINE float Pow2(int e) {
  const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// j * 2^e rounded once (what vscalefps does), |e| <= 192, j in about [0.7, 1.5]: the first
// product below is exact, only the last can round (or overflow / go subnormal).
KILN_GGML_INLINE float Scale2(float j, int e) {
  if (e > 127) return j * Pow2(e - 127) * Pow2(127);
  if (e < -126) return j * Pow2(e + 100) * Pow2(-100);
  return j * Pow2(e);
}

KILN_GGML_INLINE float ExpfImpl(float x) {
  if (std::isnan(x)) return x;
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  return Scale2(j, static_cast<int>(n));  // vscalefps
}

KILN_GGML_INLINE float SiluImpl(float x) { return x / (1.0f + ExpfImpl(0.0f - x)); }

KILN_GGML_INLINE float RoundF16(float x) { return Fp16ToFp32(Fp32ToFp16(x)); }

KILN_GGML_INLINE float LoadF16(const uint8_t* row, int i) {
  uint16_t h;
  std::memcpy(&h, row + 2 * static_cast<size_t>(i), 2);
  return Fp16ToFp32(h);
}

#if defined(__x86_64__)
// n f16 → float with F16C (exact, like the scalar conversion). CPUs with AVX2 only.
__attribute__((target("avx2,f16c"))) void ConvertF16RowF16C(const uint8_t* src, float* dst,
                                                             int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = LoadF16(src, i);
}
#endif

void ConvertF16Row(const uint8_t* src, float* dst, int n) {
#if defined(__x86_64__)
  // CPUID.1:ECX.F16C directly: clang-14's __builtin_cpu_supports does not know "f16c".
  static const bool f16c = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __builtin_cpu_supports("avx2") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) &&
           (ecx & bit_F16C) != 0;
  }();
  if (f16c) return ConvertF16RowF16C(src, dst, n);
#endif
  for (int i = 0; i < n; ++i) dst[i] = LoadF16(src, i);
}

// _mm512_reduce_add_ps as GCC expands it: 8 pairs (i, i+8), 4 pairs (i, i+4), then
// (b0 + b2) + (b1 + b3).
KILN_GGML_INLINE float ReduceAdd16(const float* v) {
  float a[8], b[4];
  for (int i = 0; i < 8; ++i) a[i] = v[i + 8] + v[i];
  for (int i = 0; i < 4; ++i) b[i] = a[i + 4] + a[i];
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// ggml_vec_dot_f16 (AVX-512): lanes i % 64 (four 16-lane accumulators), combined as
// (acc0 + acc2) + (acc1 + acc3), reduced, then the tail added in double. x, y hold f16 values,
// so each product is exact and fma equals multiply-then-add.
KILN_GGML_INLINE float VecDotF16(const float* x, const float* y, int n) {
  float lanes[64] = {};
  const int n_simd = n - n % 64;
  for (int b = 0; b < n_simd; b += 64) {
    for (int l = 0; l < 64; ++l) lanes[l] += x[b + l] * y[b + l];
  }
  float v[16];
  for (int l = 0; l < 16; ++l) v[l] = (lanes[l] + lanes[32 + l]) + (lanes[16 + l] + lanes[48 + l]);
  double sum = ReduceAdd16(v);
  for (int i = n_simd; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

// llamafile tinyBLAS (AVX-512, f16): one 16-lane accumulator over the whole length (n % 16 == 0).
KILN_GGML_INLINE float TinyBlasDotF16(const float* x, const float* y, int n) {
  float lanes[16] = {};
  for (int b = 0; b < n; b += 16) {
    for (int l = 0; l < 16; ++l) lanes[l] += x[b + l] * y[b + l];
  }
  return ReduceAdd16(lanes);
}

// The block's K rows (kf[p * d + i]) and V columns (vt[i * n_pad + p]) as floats, converted
// once for every row of the block; cells outside [lo, hi) are 0.
struct KvFloats {
  std::vector<float> kf, vt;
  int32_t n_pad = 0;
};

// One query row over cells [pos_begin, pos_end) of kvf (see AttentionRows in the header).
KILN_GGML_INLINE void AttentionRow(const float* q, const KvFloats& kvf, int d, int32_t pos_begin,
                                   int32_t pos_end, float scale, bool batched, float* out) {
  const bool tiny_qk = batched && d % 16 == 0;
  thread_local std::vector<float> qh_buf, probs_buf;
  qh_buf.resize(d);
  probs_buf.assign(kvf.n_pad, 0.0f);
  float* qh = qh_buf.data();  // plain pointers: no thread-local lookups in the loops
  float* probs = probs_buf.data();
  for (int i = 0; i < d; ++i) qh[i] = RoundF16(q[i]);
  // Cells outside [pos_begin, pos_end) are masked (probability 0), as in llama.cpp's dot
  // over all n_kv cells.
  float max_score = -INFINITY;
  for (int32_t p = pos_begin; p < pos_end; ++p) {
    const float* k = kvf.kf.data() + static_cast<size_t>(p) * d;
    probs[p] = (tiny_qk ? TinyBlasDotF16(qh, k, d) : VecDotF16(qh, k, d)) * scale;
    max_score = std::max(max_score, probs[p]);
  }
  double sum = 0.0;
  for (int32_t c0 = pos_begin / 16 * 16; c0 < pos_end; c0 += 16) {
    float chunk[16] = {};
    for (int32_t p = std::max(c0, pos_begin); p < std::min(c0 + 16, pos_end); ++p) {
      probs[p] = ExpfImpl(probs[p] - max_score);
      chunk[p - c0] = probs[p];
    }
    sum += ReduceAdd16(chunk);
  }
  const float inv_sum = static_cast<float>(1.0 / sum);
  for (int32_t p = pos_begin; p < pos_end; ++p) probs[p] = RoundF16(probs[p] * inv_sum);
  for (int i = 0; i < d; ++i) {
    const float* v = kvf.vt.data() + static_cast<size_t>(i) * kvf.n_pad;
    out[i] = batched ? TinyBlasDotF16(probs, v, kvf.n_pad) : VecDotF16(probs, v, kvf.n_pad);
  }
}

}  // namespace

KILN_GGML_CLONES float Expf(float x) { return ExpfImpl(x); }

KILN_GGML_CLONES float Silu(float x) { return SiluImpl(x); }

KILN_GGML_CLONES void SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = SiluImpl(gate[i]) * up[i];
}

KILN_GGML_CLONES void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n,
                              float* out) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * (w[i] + w_offset);
}

RopeParams MakeRopeParams(float base, int head_dim, float freq_scale, const float* freq_factors) {
  RopeParams p;
  p.theta_scale = std::pow(base, -2.0f / static_cast<float>(head_dim));
  p.freq_scale = freq_scale;
  p.freq_factors = freq_factors;
  return p;
}

KILN_GGML_CLONES void Rope(float* x, int n_heads, int head_dim, const RopeParams& rp, int32_t pos,
                           RopeStyle style) {
  const int half = head_dim / 2;
  float theta = static_cast<float>(pos);
  for (int i = 0; i < half; ++i) {
    const float ff = rp.freq_factors != nullptr ? rp.freq_factors[i] : 1.0f;
    const float angle = rp.freq_scale * (theta / ff);
    const float c = std::cos(angle), s = std::sin(angle);
    const int i0 = style == RopeStyle::kInterleaved ? 2 * i : i;
    const int i1 = style == RopeStyle::kInterleaved ? 2 * i + 1 : i + half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + static_cast<int64_t>(h) * head_dim;
      const float x0 = v[i0], x1 = v[i1];
      v[i0] = std::fma(x0, c, -(x1 * s));
      v[i1] = std::fma(x0, s, x1 * c);
    }
    theta *= rp.theta_scale;
  }
}

KILN_GGML_CLONES void AttentionRows(const AttentionBlock& b, const KvView& kv, bool batched) {
  KILN_CHECK(kv.dtype == DType::kF16) << "ggml-exact attention needs an f16 KV cache";
  const int d = kv.head_dim;
  KILN_CHECK(d > 0 && d <= kMaxAttentionHeadDim) << "head_dim " << d;
  int32_t lo = INT32_MAX, hi = 0;
  for (int t = 0; t < b.n_tok; ++t) {
    KILN_CHECK(b.pos_end[t] > b.pos_begin[t] && b.pos_begin[t] >= 0) << "bad attention range";
    lo = std::min(lo, b.pos_begin[t]);
    hi = std::max(hi, b.pos_end[t]);
  }
  thread_local KvFloats kvf_buf;
  KvFloats& kvf = kvf_buf;
  kvf.n_pad = (hi + 63) / 64 * 64;
  kvf.kf.resize(static_cast<size_t>(hi) * d);
  kvf.vt.assign(static_cast<size_t>(d) * kvf.n_pad, 0.0f);
  float* kf = kvf.kf.data();
  float* vt = kvf.vt.data();
  float vrow[kMaxAttentionHeadDim];
  for (int32_t p = lo; p < hi; ++p) {
    ConvertF16Row(kv.KRow(p, b.kv_head), kf + static_cast<size_t>(p) * d, d);
    ConvertF16Row(kv.VRow(p, b.kv_head), vrow, d);
    for (int i = 0; i < d; ++i) vt[static_cast<size_t>(i) * kvf.n_pad + p] = vrow[i];
  }
  for (int t = 0; t < b.n_tok; ++t) {
    for (int g = 0; g < b.n_group; ++g) {
      const size_t off = static_cast<size_t>(g) * d;
      AttentionRow(b.q + t * b.q_tok_stride + off, kvf, d, b.pos_begin[t], b.pos_end[t], b.scale,
                   batched, b.out + t * b.out_tok_stride + off);
    }
  }
}

void AttentionRowsTable(const AttentionBlock& block, const KvView& kv, bool batched, float*,
                        size_t) {
  AttentionRows(block, kv, batched);
}

}  // namespace kiln::kernels::ggml
