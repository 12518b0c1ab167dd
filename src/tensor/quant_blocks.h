// Block layouts of ggml's quantized types, byte for byte (GGUF files store these blocks
// as they are). F16 fields are raw IEEE half bits (tensor/fp16.h converts them). Blocks in a
// tensor are packed back to back with no padding, so a block pointer into a row may be
// misaligned: kernels memcpy blocks into locals rather than dereferencing in place.
//
// Legacy types quantize 32 elements per block with one scale (and a min for the *_1 types);
// K types quantize 256-element super-blocks split into sub-blocks with 6- or 8-bit
// sub-scales. In the 4-bit packings, byte j holds element j in its low nibble and element
// j + 16 (legacy) or j + 32 (K, per 64-element group) in its high nibble.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln {

constexpr int kQK = 32;    // elements per legacy block
constexpr int kQK_K = 256;  // elements per K super-block
constexpr int kKScaleBytes = 12;  // Q4_K/Q5_K: 8 six-bit scales + 8 six-bit mins

// Q4_0: x = d * (q - 8), q in [0, 15].
struct BlockQ4_0 {
  uint16_t d;              // f16 scale
  uint8_t qs[kQK / 2];     // nibbles
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_1: x = d * q + m, q in [0, 15].
struct BlockQ4_1 {
  uint16_t d;              // f16 scale
  uint16_t m;              // f16 min
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: x = d * (q - 16), q in [0, 31]; bit 4 of element j is bit j of qh (little endian).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];     // low 4 bits
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: x = d * q + m, q in [0, 31], high bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// Q8_0: x = d * q, q in [-127, 127].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q8_1: like Q8_0 plus s = d * sum(qs) (f16), which the Q4_1/Q5_1 dot products use for the
// min term. Activation type only.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

// Q4_K: 8 sub-blocks of 32; x = d * sc[j] * q - dmin * m[j], q in [0, 15]. scales packs
// sc/m as 6 bits: bytes 0-3 hold sc[0..3] (low 6) and sc[4..7]'s high 2 bits (top 2);
// bytes 4-7 the same for m; bytes 8-11 hold sc[4..7] low nibble | m[4..7] low nibble << 4.
// qs: 4 groups of 64 elements, 32 bytes each (low nibbles first 32, high nibbles next 32).
struct BlockQ4_K {
  uint16_t d;                    // f16 scale of the sub-scales
  uint16_t dmin;                 // f16 scale of the sub-mins
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K plus a fifth bit per element: bit (2*g + h) of qh[l] is the high bit of element
// 64*g + 32*h + l.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16; x = d * scales[j] * (q - 32), q in [0, 63]. Per 128 elements:
// ql holds low nibbles (64 bytes), qh the 2 high bits (32 bytes, four elements per byte).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];     // signed 8-bit sub-scales
  uint16_t d;                    // f16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K: activation type of the K dot products; f32 scale, x = d * q, and bsums[j] = sum of
// qs[16 j .. 16 j + 15] for the min terms.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace kiln
