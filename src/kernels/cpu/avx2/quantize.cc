// AVX2 activation quantizers (compiled with -mavx2 -mfma -mf16c only).
#include "kernels/cpu/x86/isa_kernels.h"
#include "kernels/cpu/x86/quantize_inl.h"

namespace kiln::kernels::avx2 {

void QuantizeQ8_0(const float* x, void* y, int64_t n) { x86::QuantizeQ8_0(x, y, n); }
void QuantizeQ8_1(const float* x, void* y, int64_t n) { x86::QuantizeQ8_1(x, y, n); }
void QuantizeQ8_K(const float* x, void* y, int64_t n) { x86::QuantizeQ8_K(x, y, n); }
void QuantizeF16(const float* x, void* y, int64_t n) { x86::QuantizeF16(x, y, n); }
void QuantizeBF16(const float* x, void* y, int64_t n) { x86::QuantizeBF16(x, y, n); }
void CopyF32(const float* x, void* y, int64_t n) { x86::CopyF32(x, y, n); }

}  // namespace kiln::kernels::avx2
