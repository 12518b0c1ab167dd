# Cross-compiling kiln for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu; the binaries
# run on this x86 host under qemu-aarch64-static (Debian qemu-user-static), which is also what
# CMake uses to list the gtest cases at build time and what ctest runs them with.
# Used by scripts/test_arm.sh together with -DKILN_KERNELS_ONLY=ON (no aarch64 libcurl etc.).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Headers and libraries of the target only; programs (cmake, ninja) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# -L: the target's dynamic loader and libraries (same as QEMU_LD_PREFIX). The CPU model comes
# from QEMU_CPU in the environment (scripts/test_arm.sh runs the tests under two of them).
find_program(KILN_QEMU_AARCH64 qemu-aarch64-static REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${KILN_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
