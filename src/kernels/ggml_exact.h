// llama.cpp's CPU arithmetic for the layer ops, reproduced bit for bit in scalar code: what
// ggml-cpu (x86, AVX-512 or AVX2+FMA, built with GCC) computes for a GGUF model with an f16 KV
// cache and flash attention off, llama.cpp's defaults. kiln runs these for GGUF models
// (ModelConfig::ggml_attention_rounding) so that greedy decoding agrees with llama.cpp token
// for token; Hugging Face models keep the double-precision references of norm.h, rope.h,
// activation.h and attention.h, which these stay within a few float ulps of.
//
// The reductions follow ggml's AVX-512 code (llama.cpp's choice on AVX-512 CPUs); its AVX2-only
// build sums softmax chunks of 8 and its expf handles extremes differently, so there the
// results can differ in the last bits. Each function states the arithmetic; tools/oracle/ggml_ops.py runs the same ops through
// ggml itself, and kernels/ref/ggml_exact_test.cc checks them against it bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/rope.h"

namespace kiln::kernels::ggml {

// ggml_v_expf: exp through 2^n * p(b), n = round(x / ln 2), b = x - n ln 2 (two fused steps),
// a degree-5 polynomial in fused multiply-adds; 0 below about -103.97, inf above about 88.7.
float Expf(float x);

// x / (1 + Expf(-x)) in float (ggml_v_silu).
float Silu(float x);

// out[i] = Silu(gate[i]) * up[i] (ggml_vec_swiglu_f32). out may alias gate or up.
void SwiGlu(const float* gate, const float* up, int64_t n, float* out);

// ggml_rms_norm then the weight multiply: sum of the float squares x*x accumulated in double,
// mean = (float)(sum / n), scale = 1.0f / sqrtf(mean + eps), out = (x * scale) * (w + w_offset).
void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n, float* out);

// ggml_rope_ext without YaRN (ext_factor 0, attn_factor 1).
struct RopeParams {
  float theta_scale = 1.0f;              // powf(base, -2.0f / head_dim)
  float freq_scale = 1.0f;               // 1 / linear scaling factor
  const float* freq_factors = nullptr;   // GGUF rope_freqs (head_dim/2 values) or null
};
RopeParams MakeRopeParams(float base, int head_dim, float freq_scale, const float* freq_factors);

// Pair i turns by freq_scale * (theta_i / freq_factors[i]), theta_0 = pos and
// theta_{i+1} = theta_i * theta_scale in float (not pos * theta_scale^i); c = cosf, s = sinf;
// x0' = fma(x0, c, -(x1 * s)), x1' = fma(x0, s, x1 * c). Pairs as in rope.h's RopeStyle.
void Rope(float* x, int n_heads, int head_dim, const RopeParams& p, int32_t pos, RopeStyle style);

// Attention rows as llama.cpp computes them without flash attention over an f16 cache, for a
// KvView whose slot of position p is cache cell p (a single-sequence cache filled from 0):
//   q rounded to f16; score = dot(q, K[p]) * scale; exp(score - max) by Expf, summed in
//   double over chunks of 16 cells (each chunk summed in float in _mm512_reduce_add_ps's
//   order); probabilities = exp * (float)(1 / sum), rounded to f16; out[i] = dot(P, V[:, i]).
// The two dots are ggml_vec_dot_f16 (4 × 16 lanes of fma, then one reduction) when the
// forward step evaluates one token, and llamafile's tinyBLAS (16 lanes of fma over the whole
// length, then the reduction) when it evaluates several (`batched`): llama.cpp takes tinyBLAS
// for every matrix product with at least two columns.
// block.round_qp is ignored (always rounded); kv must be f16.
void AttentionRows(const AttentionBlock& block, const KvView& kv, bool batched);

// The table forms (KernelTable::layer.ggml_attention / ggml_swiglu): the ref table holds the
// functions above; the SIMD tables (kernels/cpu/x86/ggml_exact_inl.h) compute the same bits.
// scratch: AttentionScratchFloats(n_tok * n_group, span, head_dim) floats, any alignment.
using AttentionFn = void (*)(const AttentionBlock& block, const KvView& kv, bool batched,
                             float* scratch, size_t scratch_floats);
using SwiGluFn = void (*)(const float* gate, const float* up, int64_t n, float* out);
void AttentionRowsTable(const AttentionBlock& block, const KvView& kv, bool batched,
                        float* scratch, size_t scratch_floats);

}  // namespace kiln::kernels::ggml
