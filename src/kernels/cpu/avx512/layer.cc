// AVX-512 (F/BW/VL/DQ) layer kernels: x86/layer_inl.h over 16-float / 8-double vectors.
#include "kernels/cpu/x86/layer_kernels.h"

#include <immintrin.h>

#include "kernels/cpu/x86/layer_inl.h"

namespace kiln::kernels::avx512 {
namespace {

struct Vec16 {
  using F = __m512;
  using D = __m512d;
  static constexpr int kW = 16;
  static constexpr int kWD = 8;
  static F Zero() { return _mm512_setzero_ps(); }
  static F Set1(float x) { return _mm512_set1_ps(x); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static F LoadF16(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F Max(F a, F b) { return _mm512_max_ps(a, b); }
  static F RoundF16(F v) { return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
  static __m256 Lo(F v) { return _mm512_castps512_ps256(v); }
  static __m256 Hi(F v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
  static float HSum(F v) {
    const __m256 h = _mm256_add_ps(Lo(v), Hi(v));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Lanes 16m..16m+15 of ref's 64 are acc[m]: v = (acc0+acc2)+(acc1+acc3); returns
  // v[0:8] + v[8:16].
  static __m256 Fold64(const F* acc) {
    const F v = Add(Add(acc[0], acc[2]), Add(acc[1], acc[3]));
    return _mm256_add_ps(Lo(v), Hi(v));
  }
  static F GeluTable(const float* table, F x) {
    const __m512i idx = _mm512_cvtepu16_epi32(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    F g = _mm512_i32gather_ps(idx, table, 4);
    g = _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(x, Set1(-10.0f), _CMP_LE_OQ), _mm512_setzero_ps());
    return _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(x, Set1(10.0f), _CMP_GE_OQ), x);
  }
  static D SetD(double x) { return _mm512_set1_pd(x); }
  static D LoadD(const double* p) { return _mm512_loadu_pd(p); }
  static D ToD(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static void FromD(float* p, D v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
  static D AddD(D a, D b) { return _mm512_add_pd(a, b); }
  static D SubD(D a, D b) { return _mm512_sub_pd(a, b); }
  static D MulD(D a, D b) { return _mm512_mul_pd(a, b); }
  static D DivD(D a, D b) { return _mm512_div_pd(a, b); }
  static D SelectLtD(D a, D b, D if_lt, D otherwise) {
    return _mm512_mask_mov_pd(otherwise, _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ), if_lt);
  }
  static D MinD(D a, D b) { return _mm512_min_pd(a, b); }
  static D MaxD(D a, D b) { return _mm512_max_pd(a, b); }
  static D RoundD(D a) {
    return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static D Pow2D(D p, D k) { return _mm512_scalef_pd(p, k); }
  static double HSumD(D v) {
    const __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

}  // namespace

KILN_X86_DEFINE_LAYER(Vec16)

}  // namespace kiln::kernels::avx512
