// The `neon` table's dot products and gemm (ARMv8.0 Advanced SIMD, no extensions): int8
// products with SMULL + SADALP; the float types with FMA chains (shared with neon_dotprod).
#include "kernels/cpu/neon/float_dot_inl.h"
#include "kernels/cpu/neon/neon_kernels.h"
#include "kernels/cpu/neon/quant_dot_inl.h"
#include "kernels/cpu/neon/tile_inl.h"

namespace kiln::kernels::neon {
namespace {

using namespace ::kiln::kernels::arm;  // NOLINT: block kernels of this ISA

struct NeonOps {
  // 16 int8 × int8 products (|p| <= 2^14, exact in int16), pairwise into the 4 int32 lanes.
  KILN_NEON_INLINE static int32x4_t Dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
  }
};

constexpr int kTile = 4;  // tokens per gemm tile (32 vector registers)
constexpr int kFloatTile = 2;

using KQ4_0 = LegacyKernel<NeonOps, DecodeQ4_0, false>;
using KQ4_1 = LegacyKernel<NeonOps, DecodeQ4_1, true>;
using KQ5_0 = LegacyKernel<NeonOps, DecodeQ5_0, false>;
using KQ5_1 = LegacyKernel<NeonOps, DecodeQ5_1, true>;
using KQ8_0 = LegacyKernel<NeonOps, DecodeQ8_0, false>;
using KQ4_K = KKernel<NeonOps, 4>;
using KQ5_K = KKernel<NeonOps, 5>;
using KQ6_K = KKernel<NeonOps, 6>;

}  // namespace

KILN_NEON_DEFINE_DOT(F32, F32Kernel, kFloatTile)
KILN_NEON_DEFINE_DOT(F16, F16Kernel, kFloatTile)
KILN_NEON_DEFINE_DOT(BF16, BF16Kernel, kFloatTile)
KILN_NEON_DEFINE_DOT(Q4_0, KQ4_0, kTile)
KILN_NEON_DEFINE_DOT(Q4_1, KQ4_1, kTile)
KILN_NEON_DEFINE_DOT(Q5_0, KQ5_0, kTile)
KILN_NEON_DEFINE_DOT(Q5_1, KQ5_1, kTile)
KILN_NEON_DEFINE_DOT(Q8_0, KQ8_0, kTile)
KILN_NEON_DEFINE_DOT(Q4_K, KQ4_K, kTile)
KILN_NEON_DEFINE_DOT(Q5_K, KQ5_K, kTile)
KILN_NEON_DEFINE_DOT(Q6_K, KQ6_K, kTile)

}  // namespace kiln::kernels::neon
