#include "kernels/cpu/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace kiln::kernels::cpu {
namespace {

#if defined(__x86_64__) || defined(__i386__)

bool Bit(unsigned reg, int bit) { return (reg >> bit) & 1u; }

// XGETBV(0) through inline asm so this file needs no -mxsave.
unsigned long long Xcr0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = Bit(ecx, 12), osxsave = Bit(ecx, 27), avx = Bit(ecx, 28), f16c = Bit(ecx, 29);
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = Xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = Bit(ebx, 5);
  const bool avx512f = Bit(ebx, 16), avx512dq = Bit(ebx, 17), avx512bw = Bit(ebx, 30),
             avx512vl = Bit(ebx, 31), avx512vnni = Bit(ecx, 11);
  unsigned eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
  __cpuid_count(7, 1, eax1, ebx1, ecx1, edx1);
  f.avx2 = os_ymm && avx2 && fma && f16c;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni;
  f.avx512_bf16 = f.avx512 && Bit(eax1, 5);
  return f;
}

#elif defined(__aarch64__) && defined(__linux__)

// The kernel reports what user space may run in the auxiliary vector.
CpuFeatures Detect() {
  CpuFeatures f;
  const unsigned long hwcap = getauxval(AT_HWCAP);
  f.neon = (hwcap & HWCAP_ASIMD) != 0;
  f.neon_dotprod = f.neon && (hwcap & HWCAP_ASIMDDP) != 0;
  return f;
}

#else

CpuFeatures Detect() { return {}; }

#endif

}  // namespace

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

}  // namespace kiln::kernels::cpu
