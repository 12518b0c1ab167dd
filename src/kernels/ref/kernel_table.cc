// RefKernelTable: the scalar oracle, one entry per weight type kiln computes with.
#include "kernels/kernel_table.h"

namespace kiln::kernels {

// TODO(#2): filled by the quant reference (kernels/ref/quant*.cc).
const KernelTable& RefKernelTable() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "ref";
    return t;
  }();
  return table;
}

}  // namespace kiln::kernels
