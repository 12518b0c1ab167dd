// AVX2 llama.cpp-exact layer kernels: x86/ggml_exact_inl.h over two 8-float registers (the
// 16 lanes of ggml's AVX-512 order, which these kernels reproduce on any x86-64 with FMA).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/x86/ggml_exact_inl.h"
#include "kernels/cpu/x86/layer_kernels.h"

namespace kiln::kernels::avx2 {
namespace {

struct G16 {
  struct F {
    __m256 lo, hi;  // lanes 0..7, 8..15
  };
  static F Zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static F Set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
  static F Load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static void Store(float* p, F v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
  }
  static F LoadF16(const uint8_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)))};
  }
  static F Add(F a, F b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
  static F Max(F a, F b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
  static F Sub(F a, F b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
  static F Mul(F a, F b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  static F Div(F a, F b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
  static F Fma(F a, F b, F c) {
    return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
  }
  static __m256 Round8(__m256 v) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static F RoundF16(F v) { return {Round8(v.lo), Round8(v.hi)}; }
  // a[i] = v[i + 8] + v[i], b[i] = a[i + 4] + a[i], (b0 + b2) + (b1 + b3).
  static float Reduce16(F v) {
    const __m256 a = _mm256_add_ps(v.hi, v.lo);
    const __m128 b = _mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
  }
  static void Reduce16x16(const F* v, float* out) {
    for (int c = 0; c < 16; ++c) out[c] = Reduce16(v[c]);
  }
  static float MaxLanes(F v, int a, int b) {
    float x[16];
    Store(x, v);
    float m = x[a];
    for (int i = a + 1; i < b; ++i) m = std::max(m, x[i]);
    return m;
  }
  static __m256 Keep8(__m256 v, int first, int a, int b) {
    const __m256i idx = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                         _mm256_set1_epi32(first));
    const __m256i ge = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(a - 1));
    const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(b), idx);
    return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_and_si256(ge, lt)));
  }
  static F KeepLanes(F v, int a, int b) { return {Keep8(v.lo, 0, a, b), Keep8(v.hi, 8, a, b)}; }
  // ggml_v_expf (ref's ExpfImpl): j * 2^n rounded once, as ref's Scale2 does it.
  static __m256 Expf8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
                                        _mm256_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
                                        _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    // e = n as an integer; exponents outside [-126, 127] scale in two steps (the first exact).
    __m256i e = _mm256_cvtps_epi32(n);
    const __m256i over = _mm256_cmpgt_epi32(e, _mm256_set1_epi32(127));
    const __m256i under = _mm256_cmpgt_epi32(_mm256_set1_epi32(-126), e);
    e = _mm256_sub_epi32(e, _mm256_and_si256(over, _mm256_set1_epi32(127)));
    e = _mm256_add_epi32(e, _mm256_and_si256(under, _mm256_set1_epi32(100)));
    const __m256 f2 = _mm256_blendv_ps(
        _mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(0x1p127f), _mm256_castsi256_ps(over)),
        _mm256_set1_ps(0x1p-100f), _mm256_castsi256_ps(under));
    const __m256 p2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
    __m256 out = _mm256_mul_ps(_mm256_mul_ps(j, p2), f2);
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 neg = _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ);
    const __m256 special = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(), neg);
    out = _mm256_blendv_ps(out, special, big);
    return _mm256_blendv_ps(out, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN → x
  }
  static F Expf(F x) { return {Expf8(x.lo), Expf8(x.hi)}; }
};

}  // namespace

KILN_X86_DEFINE_GGML(G16)

}  // namespace kiln::kernels::avx2
