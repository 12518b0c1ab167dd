// AVX-512 dot products and gemm (compiled with -mavx512f/bw/vl/dq/vnni + AVX2/FMA/F16C).
// Quantized types reuse the 256-bit block kernels of x86/quant_dot_inl.h with vpdpbusd as the
// int8 multiply-add; float types use 512-bit vectors.
#include "kernels/cpu/x86/isa_kernels.h"
#include "kernels/cpu/x86/quant_dot_inl.h"
#include "kernels/cpu/x86/tile_inl.h"

namespace kiln::kernels::avx512 {
namespace {

using namespace ::kiln::kernels::x86;  // NOLINT: block kernels of this ISA

struct VnniOps {
  static __m256i DotU8S8(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
  // Not vpdpwssd: the K kernels chain eight of these per block through acc, and its 5-cycle
  // latency made them latency-bound (2.5x slower than madd + add, whose add is 1 cycle).
  static __m256i DotU8S8Scaled(__m256i acc, __m256i u, __m256i s, __m256i scale16) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16));
  }
};

inline float HSum512(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return HSum(_mm256_add_ps(lo, hi));
}

inline __m512 LoadF32x16(const uint8_t* p) { return _mm512_loadu_ps(p); }
inline __m512 LoadF16x16(const uint8_t* p) { return _mm512_cvtph_ps(LoadU256(p)); }
inline __m512 LoadBF16x16(const uint8_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(LoadU256(p)), 16));
}

struct F32x32 {
  __m512 v[2];
};
struct Acc4x512 {
  __m512 v[2][2];
};

// 32 elements per block in two registers, even/odd blocks in separate accumulators.
template <int kElemBytes, __m512 (*Load16)(const uint8_t*)>
struct FloatKernel512 {
  static constexpr int kBlockElems = 32;
  static constexpr int64_t kWBlockBytes = 32 * kElemBytes;
  static constexpr int64_t kABlockBytes = 32 * kElemBytes;
  static constexpr bool kPadTail = true;
  static constexpr int kTailUnitElems = 1;
  static constexpr int64_t kTailUnitWBytes = kElemBytes;
  static constexpr int64_t kTailUnitABytes = kElemBytes;
  using W = F32x32;
  using Acc = Acc4x512;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) {
    w.v[0] = Load16(p);
    w.v[1] = Load16(p + 16 * kElemBytes);
  }
  static void Init(Acc& a) {
    for (auto& pair : a.v) pair[0] = pair[1] = _mm512_setzero_ps();
  }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    acc.v[kParity][0] = _mm512_fmadd_ps(w.v[0], Load16(a), acc.v[kParity][0]);
    acc.v[kParity][1] = _mm512_fmadd_ps(w.v[1], Load16(a + 16 * kElemBytes), acc.v[kParity][1]);
  }
  static float Finish(const Acc& a) {
    return HSum512(_mm512_add_ps(_mm512_add_ps(a.v[0][0], a.v[1][0]),
                                 _mm512_add_ps(a.v[0][1], a.v[1][1])));
  }
};

// 32 ymm registers (AVX-512VL) hold gemm tiles of 4 rows × 4 tokens for the signed legacy
// quants (16 accumulators; 2 rows × 4 tokens for the *_1 types, whose min terms add a second
// accumulator per pair) and matrix × vector tiles of 4 rows. Legacy quants stay 256-bit: a
// two-blocks-per-zmm version measured slower on Zen 4 (its 512-bit units are double-pumped
// 256-bit ones, and pairing blocks costs shuffles). vpdpbusd does not saturate, so every
// signed type uses the biased-unsigned kernel.
constexpr int kSignedRows = 4;
constexpr int kMinRows = 2;
constexpr int kTile = 4;
constexpr int kVecRows = 4;
constexpr int kKTile = 8;  // K quants: gemm 1 row × 8 tokens; matrix × vector 1 row
using KF32 = FloatKernel512<4, LoadF32x16>;
using KF16 = FloatKernel512<2, LoadF16x16>;
using KBF16 = FloatKernel512<2, LoadBF16x16>;
using KQ4_0 = BiasedQ8_0Kernel<VnniOps, DecodeQ4_0>;
using KQ5_0 = BiasedQ8_0Kernel<VnniOps, DecodeQ5_0>;
using KQ8_0 = BiasedQ8_0Kernel<VnniOps, DecodeQ8_0>;
using KQ4_1 = MinQ8_1Kernel<VnniOps, DecodeQ4_1>;
using KQ5_1 = MinQ8_1Kernel<VnniOps, DecodeQ5_1>;

}  // namespace

KILN_X86_DEFINE_DOT(F32, KF32, 1, 4, 2)
KILN_X86_DEFINE_DOT(F16, KF16, 1, 4, 2)
KILN_X86_DEFINE_DOT(BF16, KBF16, 1, 4, 2)
KILN_X86_DEFINE_DOT(Q4_0, KQ4_0, kSignedRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q4_1, KQ4_1, kMinRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q5_0, KQ5_0, kSignedRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q5_1, KQ5_1, kMinRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q8_0, KQ8_0, kSignedRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q4_K, Q4_KKernel<VnniOps>, 1, kKTile, 1)
KILN_X86_DEFINE_DOT(Q5_K, Q5_KKernel<VnniOps>, 1, kKTile, 1)
KILN_X86_DEFINE_DOT(Q6_K, Q6_KKernel<VnniOps>, 1, kKTile, 1)

}  // namespace kiln::kernels::avx512
