// Declarations of the f32 layer kernels each x86 ISA directory defines (avx2/layer.cc,
// avx512/layer.cc) from x86/layer_inl.h. Plain declarations, safe in files without ISA flags.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_table.h"

#define KILN_X86_DECLARE_LAYER                                                                \
  void Attention(const AttentionBlock& block, const KvView& kv, float* scratch,               \
                 size_t scratch_floats);                                                      \
  void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n,          \
               float* out);                                                                   \
  void Rope(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,          \
            RopeStyle style);                                                                 \
  void GatedActivation(Activation act, const float* gate, const float* up, int64_t n,         \
                       float* out);                                                           \
  void Add(float* x, const float* y, int64_t n);                                               \
  /* llama.cpp-exact kernels (ggml_exact.cc, kernels/ggml_exact.h) */                           \
  void GgmlAttention(const AttentionBlock& block, const KvView& kv, bool batched,             \
                     float* scratch, size_t scratch_floats);                                  \
  void GgmlSwiGlu(const float* gate, const float* up, int64_t n, float* out);

#define KILN_X86_DEFINE_LAYER(Vec)                                                            \
  void Attention(const AttentionBlock& block, const KvView& kv, float* scratch,               \
                 size_t scratch_floats) {                                                     \
    x86::AttentionT<Vec>(block, kv, scratch, scratch_floats);                                 \
  }                                                                                           \
  void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n,          \
               float* out) {                                                                  \
    x86::RmsNormT<Vec>(x, w, w_offset, eps, n, out);                                          \
  }                                                                                           \
  void Rope(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,          \
            RopeStyle style) {                                                                \
    x86::RopeT<Vec>(x, n_heads, head_dim, inv_freq, pos, style);                              \
  }                                                                                           \
  void GatedActivation(Activation act, const float* gate, const float* up, int64_t n,         \
                       float* out) {                                                          \
    x86::GatedActivationT<Vec>(act, gate, up, n, out);                                        \
  }                                                                                           \
  void Add(float* x, const float* y, int64_t n) { x86::AddT<Vec>(x, y, n); }

namespace kiln::kernels::avx2 {
KILN_X86_DECLARE_LAYER
}  // namespace kiln::kernels::avx2

namespace kiln::kernels::avx512 {
KILN_X86_DECLARE_LAYER
}  // namespace kiln::kernels::avx512
