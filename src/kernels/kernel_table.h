// KernelTable: the set of kernels one ISA provides, chosen once at start-up (dispatch.cc).
// Backends call kernels only through a table, never by ISA name, so the ISA is decided once
// and never per call. kernels/ref fills RefKernelTable() (the oracle); kernels/cpu/<isa>/
// fill faster tables. Tests compare every table compiled in against the ref table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/quant.h"
#include "tensor/dtype.h"

namespace kiln::kernels {

// Kernels for one weight type; null pointers mean "not provided by this ISA" and dispatch
// fills them from the next-best table (ultimately ref).
struct TypeKernels {
  DType dot_type = DType::kF32;            // DotTypeFor(weight type)
  QuantizeRowFn quantize_dot = nullptr;     // f32 activations → dot_type row
  VecDotFn vec_dot = nullptr;               // weight row · dot_type row
  DequantizeRowFn dequantize = nullptr;     // weight row → f32
};

constexpr int kNumDTypeSlots = 40;  // > largest DType id

struct KernelTable {
  std::string isa;  // "ref", "avx2", "avx512", …
  TypeKernels types[kNumDTypeSlots];

  const TypeKernels& For(DType t) const { return types[static_cast<uint32_t>(t)]; }
  TypeKernels& For(DType t) { return types[static_cast<uint32_t>(t)]; }
};

// The scalar reference table (kernels/ref).
const KernelTable& RefKernelTable();

// The table for this machine: best ISA the CPU supports, or what KILN_KERNELS names
// (ref|generic|avx2|avx512|…); computed once. An unknown or unsupported KILN_KERNELS value
// logs a warning and falls back to the best table.
const KernelTable& ActiveKernelTable();

// Every table compiled in and usable on this CPU (ref first), for tests and benchmarks.
std::vector<const KernelTable*> AvailableKernelTables();

}  // namespace kiln::kernels
