// Picks the KernelTable once: the best one this CPU supports, or KILN_KERNELS's choice.
#include <cstdlib>
#include <cstring>

#include "base/logging.h"
#include "kernels/cpu/cpu_tables.h"
#include "kernels/kernel_table.h"
#include "kernels/pack.h"

namespace kiln::kernels {
namespace {

// Fills null entries of `table` from `fallback` so callers never see a null kernel.
KernelTable Complete(KernelTable table, const KernelTable& fallback) {
  for (int i = 0; i < kNumDTypeSlots; ++i) {
    TypeKernels& t = table.types[i];
    const TypeKernels& f = fallback.types[i];
    // A packed layout is only worth it with the table's own kernel: a table without one
    // leaves the slot empty and the backend keeps the original layout.
    if (IsPacked(static_cast<DType>(i))) continue;
    if (t.quantize_dot == nullptr || t.vec_dot == nullptr) {
      // The dot path is one unit: activations quantized by one table must be dotted by it too.
      t.dot_type = f.dot_type;
      t.quantize_dot = f.quantize_dot;
      t.vec_dot = f.vec_dot;
      t.gemm = f.gemm;
    }
    if (t.dequantize == nullptr) t.dequantize = f.dequantize;
  }
  LayerKernels& l = table.layer;
  if (l.attention == nullptr) l.attention = fallback.layer.attention;
  if (l.rms_norm == nullptr) l.rms_norm = fallback.layer.rms_norm;
  if (l.rope == nullptr) l.rope = fallback.layer.rope;
  if (l.gated_activation == nullptr) l.gated_activation = fallback.layer.gated_activation;
  if (l.add == nullptr) l.add = fallback.layer.add;
  if (l.ggml_attention == nullptr) l.ggml_attention = fallback.layer.ggml_attention;
  if (l.ggml_swiglu == nullptr) l.ggml_swiglu = fallback.layer.ggml_swiglu;
  return table;
}

std::vector<KernelTable> BuildTables() {
  std::vector<KernelTable> tables;
  tables.push_back(RefKernelTable());
  for (const KernelTable* t : cpu::CompiledTables()) {
    if (cpu::Supported(*t)) tables.push_back(Complete(*t, RefKernelTable()));
  }
  return tables;
}

const std::vector<KernelTable>& Tables() {
  static const std::vector<KernelTable> tables = BuildTables();
  return tables;
}

const KernelTable& Choose() {
  const std::vector<KernelTable>& tables = Tables();
  const char* env = std::getenv("KILN_KERNELS");
  if (env != nullptr && *env != '\0') {
    for (const KernelTable& t : tables) {
      if (t.isa == env) return t;
    }
    KILN_LOG(kWarn, "KILN_KERNELS=%s is not available on this CPU; using %s", env,
             tables.back().isa.c_str());
  }
  return tables.back();  // CompiledTables() lists ISAs from least to most capable
}

}  // namespace

const KernelTable& ActiveKernelTable() {
  static const KernelTable& table = Choose();
  return table;
}

std::vector<const KernelTable*> AvailableKernelTables() {
  std::vector<const KernelTable*> out;
  for (const KernelTable& t : Tables()) out.push_back(&t);
  return out;
}

}  // namespace kiln::kernels
