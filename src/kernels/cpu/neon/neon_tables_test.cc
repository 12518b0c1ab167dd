// AArch64 dispatch: the neon tables are offered exactly when the kernel's HWCAP bits say the
// CPU can run them, the best one is chosen, and the run under a given CPU model picks the table
// scripts/test_arm.sh expects (KILN_EXPECT_ISA), so both dispatch paths are known to have run.
// The kernels themselves are checked against ref by kernels_cpu_test and kernels_layer_test.
#include <asm/hwcap.h>
#include <gtest/gtest.h>
#include <sys/auxv.h>

#include <cstdlib>
#include <string>

#include "kernels/kernel_table.h"

namespace kiln::kernels {
namespace {

bool Available(const std::string& isa) {
  for (const KernelTable* t : AvailableKernelTables()) {
    if (t->isa == isa) return true;
  }
  return false;
}

TEST(NeonTables, OfferedPerHwcap) {
  const unsigned long hwcap = getauxval(AT_HWCAP);
  const bool asimd = (hwcap & HWCAP_ASIMD) != 0;
  const bool dotprod = asimd && (hwcap & HWCAP_ASIMDDP) != 0;
  EXPECT_EQ(Available("neon"), asimd);
  EXPECT_EQ(Available("neon_dotprod"), dotprod);
  EXPECT_FALSE(Available("avx2"));
  EXPECT_FALSE(Available("avx512"));
  const char* forced = std::getenv("KILN_KERNELS");
  if (forced == nullptr || *forced == '\0') {
    EXPECT_EQ(ActiveKernelTable().isa, dotprod ? "neon_dotprod" : asimd ? "neon" : "ref");
  }
}

TEST(NeonTables, ActiveTableIsTheExpectedOne) {
  const char* expect = std::getenv("KILN_EXPECT_ISA");
  if (expect == nullptr || *expect == '\0') GTEST_SKIP() << "KILN_EXPECT_ISA not set";
  EXPECT_EQ(ActiveKernelTable().isa, expect);
}

// The two tables share everything but the integer dot products.
TEST(NeonTables, DotprodTableDiffersOnlyInQuantDots) {
  if (!Available("neon") || !Available("neon_dotprod")) GTEST_SKIP() << "no dotprod here";
  const KernelTable* neon = nullptr;
  const KernelTable* dp = nullptr;
  for (const KernelTable* t : AvailableKernelTables()) {
    if (t->isa == "neon") neon = t;
    if (t->isa == "neon_dotprod") dp = t;
  }
  for (DType q : {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    EXPECT_NE(neon->For(q).vec_dot, dp->For(q).vec_dot) << DTypeName(q);
    EXPECT_EQ(neon->For(q).quantize_dot, dp->For(q).quantize_dot) << DTypeName(q);
  }
  EXPECT_EQ(neon->For(DType::kF16).vec_dot, dp->For(DType::kF16).vec_dot);
  EXPECT_EQ(neon->layer.rms_norm, dp->layer.rms_norm);
}

}  // namespace
}  // namespace kiln::kernels
