// KernelTable: the set of kernels one ISA provides, chosen once at start-up (dispatch.cc).
// Backends call kernels only through a table, never by ISA name, so the ISA is decided once
// and never per call. kernels/ref fills RefKernelTable() (the oracle); kernels/cpu/<isa>/
// fill faster tables. Tests compare every table compiled in against the ref table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/ggml_exact.h"
#include "kernels/quant.h"
#include "kernels/rope.h"
#include "tensor/dtype.h"

namespace kiln::kernels {

// Batched product of weight rows with several activation rows (prompt processing):
//   out[t * out_stride + r] = vec_dot(w + r * w_row_bytes, a + t * a_row_bytes, k)
//   for every token t in [0, n_tokens) and weight row r in [row_begin, row_end).
// w: the weight matrix of the entry's weight type, row r at w + r * w_row_bytes.
// a: n_tokens activation rows already quantized with the SAME table's quantize_dot (dot_type),
//    token t at a + t * a_row_bytes. k: elements per row (a multiple of the block size).
// out: f32, token-major (row t of the output starts at out + t * out_stride); only columns
//    [row_begin, row_end) are written, so threads may split the rows between them.
// Results are bit-identical to the same table's vec_dot on each (row, token) pair: a token's
// output never depends on how many other tokens share the call (batch invariance).
// Tiled so each weight block is decoded once for several tokens. No alignment required.
using GemmFn = void (*)(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,
                        int64_t n_tokens, int64_t k, float* out, int64_t out_stride,
                        int64_t row_begin, int64_t row_end);

// Kernels for one weight type; null pointers mean "not provided by this ISA" and dispatch
// fills them from the next-best table (ultimately ref).
struct TypeKernels {
  DType dot_type = DType::kF32;            // DotTypeFor(weight type)
  QuantizeRowFn quantize_dot = nullptr;     // f32 activations → dot_type row
  VecDotFn vec_dot = nullptr;               // weight row · dot_type row
  DequantizeRowFn dequantize = nullptr;     // weight row → f32
  // Optional (null in ref): when null, loop vec_dot over (row, token). Belongs to the same
  // table as quantize_dot/vec_dot (dispatch completes the three together).
  GemmFn gemm = nullptr;
};

constexpr int kNumDTypeSlots = 40;  // > largest DType id

// The f32 layer ops besides matrix products, with the contracts of norm.h, rope.h,
// activation.h and attention.h (the ref table holds the oracles; dispatch fills nulls of a
// faster table from ref). RmsNorm/Rope/GatedActivation/Add results equal ref's except for
// double-rounding corners (they compute in double like ref, in another order).
using RmsNormFn = void (*)(const float* x, const float* w, float w_offset, float eps, int64_t n,
                           float* out);
// Rotates x[n_heads][head_dim] of one token at position pos (ref::Rope's contract).
using RopeFn = void (*)(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,
                        RopeStyle style);
using GatedActivationFn = void (*)(Activation act, const float* gate, const float* up, int64_t n,
                                   float* out);
// x[i] += y[i]; exact.
using AddFn = void (*)(float* x, const float* y, int64_t n);

struct LayerKernels {
  AttentionFn attention = nullptr;
  RmsNormFn rms_norm = nullptr;
  RopeFn rope = nullptr;
  GatedActivationFn gated_activation = nullptr;
  AddFn add = nullptr;
  // llama.cpp's arithmetic, bit for bit (kernels/ggml_exact.h): every table computes the
  // same bits as the scalar functions there.
  ggml::AttentionFn ggml_attention = nullptr;
  ggml::SwiGluFn ggml_swiglu = nullptr;
};

struct KernelTable {
  std::string isa;  // "ref", "avx2", "avx512", …
  TypeKernels types[kNumDTypeSlots];
  LayerKernels layer;

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
