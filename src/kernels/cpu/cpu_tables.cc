#include "kernels/cpu/cpu_tables.h"

namespace kiln::kernels::cpu {

// TODO(#4): AVX2 / AVX-512 / AMX / NEON tables register here.
std::vector<const KernelTable*> CompiledTables() { return {}; }

bool Supported(const KernelTable& table) { return false; }

}  // namespace kiln::kernels::cpu
