// What this x86-64 CPU and OS can run, read once with CPUID and XGETBV. The OS check matters:
// a CPU may support AVX-512 while the kernel does not save its registers (XCR0), and then
// the instructions fault.
#pragma once

namespace kiln::kernels::cpu {

struct CpuFeatures {
  bool avx2 = false;       // AVX2 + FMA + F16C, with OS-saved YMM state
  bool avx512 = false;     // AVX-512 F/BW/VL/DQ + VNNI, with OS-saved ZMM/opmask state
  bool avx512_bf16 = false;
  bool neon = false;          // AArch64 Advanced SIMD (HWCAP_ASIMD)
  bool neon_dotprod = false;  // + SDOT/UDOT (HWCAP_ASIMDDP, ARMv8.2 dotprod)
};

// Computed on first call; the x86 fields are false on AArch64 and the ARM ones on x86.
const CpuFeatures& GetCpuFeatures();

}  // namespace kiln::kernels::cpu
