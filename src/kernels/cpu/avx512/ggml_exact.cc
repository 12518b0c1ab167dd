// AVX-512 llama.cpp-exact layer kernels: x86/ggml_exact_inl.h over one 16-float register.
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/x86/ggml_exact_inl.h"
#include "kernels/cpu/x86/layer_kernels.h"

namespace kiln::kernels::avx512 {
namespace {

struct G16 {
  using F = __m512;
  static F Zero() { return _mm512_setzero_ps(); }
  static F Set1(float x) { return _mm512_set1_ps(x); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F LoadF16(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm512_div_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F Max(F a, F b) { return _mm512_max_ps(a, b); }
  static F RoundF16(F v) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // a[i] = v[i + 8] + v[i], b[i] = a[i + 4] + a[i], (b0 + b2) + (b1 + b3).
  static float Reduce16(F v) {
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 a = _mm256_add_ps(hi, lo);
    const __m128 b = _mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));  // c0 = b0 + b2, c1 = b1 + b3
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
  }
  // out[c] = Reduce16(v[c]) for 16 vectors, by transposing adds: each step adds the same two
  // values per cell as Reduce16 (float addition commutes bit for bit).
  __attribute__((always_inline)) static void Reduce16x16(const F* v, float* out) {
    F a[8], b4[4], c2[2];
    for (int i = 0; i < 8; ++i) {  // [lo8 of cell 2i | lo8 of 2i+1] + [hi8 | hi8]
      const F x = _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0));
      const F y = _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2));
      a[i] = _mm512_add_ps(y, x);  // 128-bit lanes: cell 2i a0..3, a4..7, cell 2i+1 a0..3, a4..7
    }
    for (int i = 0; i < 4; ++i) {  // 128-bit lanes: b0..3 of cells 4i, 4i+1, 4i+2, 4i+3
      const F x = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0));
      const F y = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1));
      b4[i] = _mm512_add_ps(y, x);
    }
    for (int i = 0; i < 2; ++i) {  // lane k: [c0, c1] of cell 8i + k, [c0, c1] of 8i + 4 + k
      const F x = _mm512_shuffle_ps(b4[2 * i], b4[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0));
      const F y = _mm512_shuffle_ps(b4[2 * i], b4[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2));
      c2[i] = _mm512_add_ps(x, y);
    }
    // lane k: c0 + c1 of cells k, 4 + k, 8 + k, 12 + k, in 32-bit slot 4k + m for cell 4m + k.
    const F x = _mm512_shuffle_ps(c2[0], c2[1], _MM_SHUFFLE(2, 0, 2, 0));
    const F y = _mm512_shuffle_ps(c2[0], c2[1], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(order, _mm512_add_ps(x, y)));
  }
  static float MaxLanes(F v, int a, int b) {
    const __mmask16 m = static_cast<__mmask16>(((1u << b) - 1u) & ~((1u << a) - 1u));
    return _mm512_mask_reduce_max_ps(m, v);
  }
  static F KeepLanes(F v, int a, int b) {
    const __mmask16 m = static_cast<__mmask16>(((1u << b) - 1u) & ~((1u << a) - 1u));
    return _mm512_maskz_mov_ps(m, v);
  }
  // ggml_v_expf (ref's ExpfImpl): 2^n * p(b), the scaling by vscalefps.
  static F Expf(F x) {
    const F r = Set1(0x1.8p23f);
    const F z = _mm512_fmadd_ps(x, Set1(0x1.715476p+0f), r);
    const F n = _mm512_sub_ps(z, r);
    const F b = _mm512_fnmadd_ps(n, Set1(0x1.7f7d1cp-20f),
                                 _mm512_fnmadd_ps(n, Set1(0x1.62e4p-1f), x));
    const F u = _mm512_mul_ps(b, b);
    const F j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(Set1(0x1.0e4020p-7f), b, Set1(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(Set1(0x1.555e66p-3f), b, Set1(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(Set1(0x1.ffffecp-1f), b, Set1(1.0f)));
    F out = _mm512_scalef_ps(j, n);
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), Set1(192.0f), _CMP_GT_OQ);
    if (big != 0) {
      const __mmask16 neg = _mm512_cmp_ps_mask(n, Zero(), _CMP_LE_OQ);
      out = _mm512_mask_mov_ps(out, big, _mm512_mask_mov_ps(Set1(INFINITY), neg, Zero()));
    }
    return _mm512_mask_mov_ps(out, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);  // NaN → x
  }
};

}  // namespace

KILN_X86_DEFINE_GGML(G16)

}  // namespace kiln::kernels::avx512
