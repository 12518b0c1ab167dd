// The CPU kernel tables compiled into this binary and a CPUID check for each.
#pragma once

#include <vector>

#include "kernels/kernel_table.h"

namespace kiln::kernels::cpu {

// Tables compiled in, from least to most capable ISA. May be empty.
std::vector<const KernelTable*> CompiledTables();
// True when this CPU (and OS, for AVX-512/AMX state) can run the table's ISA.
bool Supported(const KernelTable& table);

}  // namespace kiln::kernels::cpu
