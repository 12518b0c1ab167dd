// The `neon_dotprod` table's quantized dot products and gemm: the block kernels of
// quant_dot_inl.h on SDOT (compiled with -march=armv8.2-a+dotprod; cpu_tables.cc offers the
// table only where HWCAP_ASIMDDP says the CPU has it). Keep this file to those kernels: any
// non-anonymous inline code here could be picked by the linker for the plain neon table.
#include "kernels/cpu/neon/neon_kernels.h"
#include "kernels/cpu/neon/quant_dot_inl.h"
#include "kernels/cpu/neon/tile_inl.h"

namespace kiln::kernels::neon_dotprod {
namespace {

using namespace ::kiln::kernels::arm;  // NOLINT: block kernels of this ISA

struct DotProdOps {
  KILN_NEON_INLINE static int32x4_t Dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vdotq_s32(acc, a, b);
  }
};

constexpr int kTile = 4;

using KQ4_0 = LegacyKernel<DotProdOps, DecodeQ4_0, false>;
using KQ4_1 = LegacyKernel<DotProdOps, DecodeQ4_1, true>;
using KQ5_0 = LegacyKernel<DotProdOps, DecodeQ5_0, false>;
using KQ5_1 = LegacyKernel<DotProdOps, DecodeQ5_1, true>;
using KQ8_0 = LegacyKernel<DotProdOps, DecodeQ8_0, false>;
using KQ4_K = KKernel<DotProdOps, 4>;
using KQ5_K = KKernel<DotProdOps, 5>;
using KQ6_K = KKernel<DotProdOps, 6>;

}  // namespace

KILN_NEON_DEFINE_DOT(Q4_0, KQ4_0, kTile)
KILN_NEON_DEFINE_DOT(Q4_1, KQ4_1, kTile)
KILN_NEON_DEFINE_DOT(Q5_0, KQ5_0, kTile)
KILN_NEON_DEFINE_DOT(Q5_1, KQ5_1, kTile)
KILN_NEON_DEFINE_DOT(Q8_0, KQ8_0, kTile)
KILN_NEON_DEFINE_DOT(Q4_K, KQ4_K, kTile)
KILN_NEON_DEFINE_DOT(Q5_K, KQ5_K, kTile)
KILN_NEON_DEFINE_DOT(Q6_K, KQ6_K, kTile)

}  // namespace kiln::kernels::neon_dotprod
