#!/usr/bin/env bash
# The AArch64 kernels (src/kernels/cpu/neon) cross-compiled with Debian's g++-aarch64-linux-gnu
# and tested under qemu-aarch64-static, on two CPU models so both dispatch paths run:
#   QEMU_CPU=max         has the dotprod extension → the neon_dotprod table is chosen
#   QEMU_CPU=cortex-a53  ARMv8.0, no dotprod       → the neon table is chosen
# Every table present is compared against ref by kernels_cpu_test / kernels_layer_test.
# Builds only base, tensor and kernels (-DKILN_KERNELS_ONLY=ON) with gtest from Debian's
# googletest sources. Called by scripts/test.sh; needs the apt packages of install_deps.sh.
# KILN_ARM_ASAN=1 also runs the kernel tests built with ASan+UBSan (not in CI: ~8 more minutes
# from a cold cache; LeakSanitizer cannot run under qemu-user, so leaks are not checked).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KILN_ARM_BUILD_DIR:-$ROOT/build-arm}"
GTEST_SRC=/usr/src/googletest
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

for tool in aarch64-linux-gnu-g++ qemu-aarch64-static; do
  command -v "$tool" >/dev/null || { echo "test_arm: $tool missing (scripts/install_deps.sh)"; exit 1; }
done
[[ -f $GTEST_SRC/CMakeLists.txt ]] || { echo "test_arm: $GTEST_SRC missing (apt googletest)"; exit 1; }

# build DIR TARGET... [-- cmake options]: configure for aarch64 and build the targets.
build() {
  local dir=$1
  shift
  local targets=() opts=()
  while [[ $# -gt 0 && $1 != -- ]]; do targets+=("$1"); shift; done
  [[ $# -gt 0 ]] && { shift; opts=("$@"); }
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" \
    -DKILN_KERNELS_ONLY=ON -DKILN_GTEST_SOURCE_DIR="$GTEST_SRC" "${opts[@]}" >/dev/null
  cmake --build "$dir" -j 2 --target "${targets[@]}"
}

# run DIR CPU EXPECTED_TABLE [ctest args]: the built tests under one qemu CPU model.
# tensor_test is not built (GCC 12 for aarch64 has no C++ _Float16): skip its placeholder.
run() {
  local dir=$1 cpu=$2 expect=$3
  shift 3
  echo "--- qemu -cpu $cpu: expecting the $expect table ($dir)"
  QEMU_CPU=$cpu KILN_EXPECT_ISA=$expect ctest --test-dir "$dir" --output-on-failure -j 2 \
    -E '_NOT_BUILT$' "$@"
}

unset KILN_KERNELS
build "$BUILD" kernels_cpu_test kernels_layer_test kernels_quant_test kernels_ref_ops_test \
  kernels_neon_tables_test base_test -- -DCMAKE_BUILD_TYPE=Release
run "$BUILD" max neon_dotprod
run "$BUILD" cortex-a53 neon
# KILN_KERNELS forces the plain table on a CPU that has dotprod.
KILN_KERNELS=neon run "$BUILD" max neon -R 'NeonTables|TablesAreListed'

if [[ "${KILN_ARM_ASAN:-0}" == 1 ]]; then
  export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  build "$BUILD-asan" kernels_cpu_test kernels_layer_test kernels_neon_tables_test -- \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE=ON
  run "$BUILD-asan" max neon_dotprod
  run "$BUILD-asan" cortex-a53 neon
fi
echo "test_arm: ok"
