// AVX-512 VNNI gemm for the packed weight layouts (kernels/pack.h; kernels in
// x86/packed_inl.h): one vpdpbusd covers 16 rows × 4 elements of one token.
#include "kernels/cpu/x86/isa_kernels.h"
#include "kernels/cpu/x86/packed_inl.h"
#include "kernels/cpu/x86/packed_k_inl.h"

namespace kiln::kernels::avx512 {

KILN_X86_DEFINE_PACKED_GEMM(Q4_0R16, x86::Avx512R16<4>)
KILN_X86_DEFINE_PACKED_GEMM(Q8_0R16, x86::Avx512R16<8>)
KILN_X86_DEFINE_PACKED_GEMM(Q5_0R16, x86::Avx512R16<5>)
KILN_X86_DEFINE_PACKED_GEMM(Q4_KR16, x86::Avx512Q4KR16)
KILN_X86_DEFINE_PACKED_GEMM(Q6_KR16, x86::Avx512Q6KR16)

}  // namespace kiln::kernels::avx512
