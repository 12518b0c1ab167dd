// AVX2 dot products and gemm for every weight type (compiled with -mavx2 -mfma -mf16c only).
// Int8 products use maddubs + madd; the block kernels are shared with avx512 (x86/*_inl.h).
#include "kernels/cpu/x86/float_dot_inl.h"
#include "kernels/cpu/x86/isa_kernels.h"
#include "kernels/cpu/x86/quant_dot_inl.h"
#include "kernels/cpu/x86/tile_inl.h"

namespace kiln::kernels::avx2 {
namespace {

using namespace ::kiln::kernels::x86;  // NOLINT: block kernels of this ISA

struct Avx2Ops {
  static __m256i DotU8S8(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
  }
  static __m256i DotU8S8Scaled(__m256i acc, __m256i u, __m256i s, __m256i scale16) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16));
  }
};

// 16 ymm registers: gemm tiles of 2 rows × 2 tokens and matrix × vector tiles of 4 rows
// keep accumulators and weights in registers. maddubs saturates its int16 pair sums, so only
// the 4- and 5-bit signed types use the biased-unsigned kernel (pairs < 2 * 31 * 128); Q8_0
// keeps the sign trick.
constexpr int kRows = 2;
constexpr int kTile = 2;
constexpr int kVecRows = 4;
constexpr int kKTile = 4;  // K quants: gemm 1 row × 4 tokens, matrix × vector 1 row
using KQ4_0 = BiasedQ8_0Kernel<Avx2Ops, DecodeQ4_0>;
using KQ5_0 = BiasedQ8_0Kernel<Avx2Ops, DecodeQ5_0>;
using KQ8_0 = SignedQ8_0Kernel<Avx2Ops, DecodeQ8_0>;
using KQ4_1 = MinQ8_1Kernel<Avx2Ops, DecodeQ4_1>;
using KQ5_1 = MinQ8_1Kernel<Avx2Ops, DecodeQ5_1>;

}  // namespace

KILN_X86_DEFINE_DOT(F32, F32Kernel256, 1, 2, 2)
KILN_X86_DEFINE_DOT(F16, F16Kernel256, 1, 2, 2)
KILN_X86_DEFINE_DOT(BF16, BF16Kernel256, 1, 2, 2)
KILN_X86_DEFINE_DOT(Q4_0, KQ4_0, kRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q4_1, KQ4_1, kRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q5_0, KQ5_0, kRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q5_1, KQ5_1, kRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q8_0, KQ8_0, kRows, kTile, kVecRows)
KILN_X86_DEFINE_DOT(Q4_K, Q4_KKernel<Avx2Ops>, 1, kKTile, 1)
KILN_X86_DEFINE_DOT(Q5_K, Q5_KKernel<Avx2Ops>, 1, kKTile, 1)
KILN_X86_DEFINE_DOT(Q6_K, Q6_KKernel<Avx2Ops>, 1, kKTile, 1)

}  // namespace kiln::kernels::avx2
