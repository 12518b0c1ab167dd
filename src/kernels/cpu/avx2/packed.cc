// AVX2 gemm for the packed weight layouts (kernels/pack.h; kernels in x86/packed_inl.h),
// compiled with -mavx2 -mfma -mf16c only: maddubs + madd, 8 rows per vector.
#include "kernels/cpu/x86/isa_kernels.h"
#include "kernels/cpu/x86/packed_inl.h"
#include "kernels/cpu/x86/packed_k_inl.h"

namespace kiln::kernels::avx2 {

KILN_X86_DEFINE_PACKED_GEMM(Q4_0R16, x86::Avx2Q4R16)
KILN_X86_DEFINE_PACKED_GEMM(Q8_0R16, x86::Avx2Q8R16)
KILN_X86_DEFINE_PACKED_GEMM(Q5_0R16, x86::Avx2Q5R16)
KILN_X86_DEFINE_PACKED_GEMM(Q4_KR16, x86::Avx2Q4KR16)

void GemmQ6_KR16(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,
                 int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
                 int64_t row_end) {
  if (n_tokens == 1 && row_end > row_begin) {  // decode: one in-order pass per group
    using M = x86::Avx2Q6KR16;
    const auto* a8 = static_cast<const uint8_t*>(a);
    const int64_t nb = k / M::kBlockElems;
    const x86::KTokenInfo* info = M::Infos(a8, a_row_bytes, 1, nb);
    const int64_t group_bytes = x86::kPackGroupRows * static_cast<int64_t>(w_row_bytes);
    M::MatVec(static_cast<const uint8_t*>(w), group_bytes, a8, info, nb, out,
              row_begin / x86::kPackGroupRows, row_end / x86::kPackGroupRows);
    return;
  }
  x86::PackedGemm<x86::Avx2Q6KR16>(w, w_row_bytes, a, a_row_bytes, n_tokens, k, out, out_stride,
                                  row_begin, row_end);
}

}  // namespace kiln::kernels::avx2
