// AVX2 (+FMA, F16C) layer kernels: x86/layer_inl.h over 8-float / 4-double vectors.
#include "kernels/cpu/x86/layer_kernels.h"

#include <immintrin.h>

#include "kernels/cpu/x86/layer_inl.h"

namespace kiln::kernels::avx2 {
namespace {

struct Vec8 {
  using F = __m256;
  using D = __m256d;
  static constexpr int kW = 8;
  static constexpr int kWD = 4;
  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float x) { return _mm256_set1_ps(x); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static F LoadF16(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F RoundF16(F v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
  static float HSum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Lanes 8m..8m+7 of ref's 64 are acc[m]: v[0:8] = (acc0+acc4)+(acc2+acc6),
  // v[8:16] = (acc1+acc5)+(acc3+acc7); returns v[0:8] + v[8:16].
  static __m256 Fold64(const F* acc) {
    const F lo = Add(Add(acc[0], acc[4]), Add(acc[2], acc[6]));
    const F hi = Add(Add(acc[1], acc[5]), Add(acc[3], acc[7]));
    return Add(lo, hi);
  }
  static F GeluTable(const float* table, F x) {
    const __m256i idx = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    F g = _mm256_i32gather_ps(table, idx, 4);
    g = _mm256_blendv_ps(g, _mm256_setzero_ps(), _mm256_cmp_ps(x, Set1(-10.0f), _CMP_LE_OQ));
    return _mm256_blendv_ps(g, x, _mm256_cmp_ps(x, Set1(10.0f), _CMP_GE_OQ));
  }
  static D SetD(double x) { return _mm256_set1_pd(x); }
  static D LoadD(const double* p) { return _mm256_loadu_pd(p); }
  static D ToD(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static void FromD(float* p, D v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
  static D AddD(D a, D b) { return _mm256_add_pd(a, b); }
  static D SubD(D a, D b) { return _mm256_sub_pd(a, b); }
  static D MulD(D a, D b) { return _mm256_mul_pd(a, b); }
  static D DivD(D a, D b) { return _mm256_div_pd(a, b); }
  static D SelectLtD(D a, D b, D if_lt, D otherwise) {
    return _mm256_blendv_pd(otherwise, if_lt, _mm256_cmp_pd(a, b, _CMP_LT_OQ));
  }
  static D MinD(D a, D b) { return _mm256_min_pd(a, b); }
  static D MaxD(D a, D b) { return _mm256_max_pd(a, b); }
  static D RoundD(D a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p * 2^k for integral k in [-1100, 1100] (two steps so 2^k never leaves the normal range).
  static D Pow2D(D p, D k) {
    const __m128i ki = _mm256_cvtpd_epi32(k);
    const __m128i k1 = _mm_srai_epi32(ki, 1);
    const __m128i k2 = _mm_sub_epi32(ki, k1);
    auto pow2 = [](__m128i e) {
      const __m256i b = _mm256_add_epi64(_mm256_cvtepi32_epi64(e), _mm256_set1_epi64x(1023));
      return _mm256_castsi256_pd(_mm256_slli_epi64(b, 52));
    };
    return MulD(MulD(p, pow2(k1)), pow2(k2));
  }
  static double HSumD(D v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

}  // namespace

KILN_X86_DEFINE_LAYER(Vec8)

}  // namespace kiln::kernels::avx2
