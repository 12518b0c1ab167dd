// Every kernel table's layer ops (attention, RMSNorm, RoPE, gated activations, add) against
// the reference table (kernels/ref), on random inputs over many sizes, tails, misaligned
// starts, head dims, GQA ratios, windows, f16/f32 and paged KV views.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/norm.h"
#include "tensor/fp16.h"

namespace kiln::kernels {
namespace {

// RMSNorm, RoPE and the tanh/SiLU activations compute in double like ref, in another order:
// the float results may differ in the last bit where a double result lies near a tie.
constexpr double kMaxRelErrLayerF32 = 1.2e-7;  // one float ulp
// The f16-rounded attention (llama.cpp's numerics) and the f16 GELU table: bit for bit.

std::vector<float> Gaussian(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, stddev);
  std::vector<float> x(n);
  for (float& v : x) v = g(rng);
  return x;
}

bool CloseRel(float a, float b, double rel) {
  return std::fabs(static_cast<double>(a) - b) <= rel * std::max(std::fabs(a), std::fabs(b)) + 1e-37;
}

uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

std::vector<const KernelTable*> FastTables() {
  std::vector<const KernelTable*> t = AvailableKernelTables();
  t.erase(t.begin());  // ref
  return t;
}

TEST(LayerKernels, TablesExist) {
  for (const KernelTable* t : AvailableKernelTables()) {
    EXPECT_NE(t->layer.attention, nullptr) << t->isa;
    EXPECT_NE(t->layer.rms_norm, nullptr) << t->isa;
    EXPECT_NE(t->layer.rope, nullptr) << t->isa;
    EXPECT_NE(t->layer.gated_activation, nullptr) << t->isa;
    EXPECT_NE(t->layer.add, nullptr) << t->isa;
    EXPECT_NE(t->layer.ggml_attention, nullptr) << t->isa;
    EXPECT_NE(t->layer.ggml_swiglu, nullptr) << t->isa;
  }
}

TEST(LayerKernels, RmsNormMatchesRef) {
  const KernelTable& ref = RefKernelTable();
  for (const KernelTable* t : FastTables()) {
    for (int64_t n : {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 47, 48, 49, 64, 65, 576, 640, 896, 2048}) {
      for (int misalign : {0, 1, 3}) {
        for (float off : {0.0f, 1.0f}) {
          std::vector<float> x = Gaussian(n + misalign, 1 + n, 3.0f), w = Gaussian(n + misalign, 2 + n);
          std::vector<float> a(n + misalign), b(n + misalign);
          ref.layer.rms_norm(x.data() + misalign, w.data() + misalign, off, 1e-6f, n, a.data());
          t->layer.rms_norm(x.data() + misalign, w.data() + misalign, off, 1e-6f, n, b.data() + misalign);
          for (int64_t i = 0; i < n; ++i) {
            ASSERT_TRUE(CloseRel(a[i], b[i + misalign], kMaxRelErrLayerF32))
                << t->isa << " n=" << n << " i=" << i << " " << a[i] << " vs " << b[i + misalign];
          }
          // In place.
          std::vector<float> c(x);
          t->layer.rms_norm(c.data() + misalign, w.data() + misalign, off, 1e-6f, n, c.data() + misalign);
          for (int64_t i = 0; i < n; ++i) ASSERT_EQ(Bits(c[i + misalign]), Bits(b[i + misalign]));
        }
      }
    }
  }
}

TEST(LayerKernels, RopeMatchesRef) {
  const KernelTable& ref = RefKernelTable();
  for (const KernelTable* t : FastTables()) {
    for (int hd : {2, 6, 16, 32, 64, 80, 128, 256}) {
      for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kNeox}) {
        for (RopeScalingType st : {RopeScalingType::kNone, RopeScalingType::kLlama3}) {
          RopeScaling sc;
          sc.type = st;
          sc.factor = 8.0f;
          sc.original_context = 8192;
          std::vector<float> inv(hd / 2);
          ref::RopeInvFreq(hd, 500000.0f, sc, nullptr, inv.data());
          for (int32_t pos : {0, 1, 17, 511, 4099}) {
            const int n_heads = 3;
            std::vector<float> a = Gaussian(n_heads * hd, hd * 31 + pos), b = a;
            ref.layer.rope(a.data(), n_heads, hd, inv.data(), pos, style);
            t->layer.rope(b.data(), n_heads, hd, inv.data(), pos, style);
            for (int i = 0; i < n_heads * hd; ++i) {
              ASSERT_TRUE(CloseRel(a[i], b[i], kMaxRelErrLayerF32))
                  << t->isa << " hd=" << hd << " pos=" << pos << " i=" << i;
            }
          }
        }
      }
    }
  }
}

TEST(LayerKernels, GatedActivationMatchesRef) {
  const KernelTable& ref = RefKernelTable();
  for (const KernelTable* t : FastTables()) {
    for (Activation act : {Activation::kSilu, Activation::kGeluTanh, Activation::kGeluTanhF16Table}) {
      for (int64_t n : {0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 33, 49, 1536, 4099}) {
        for (int misalign : {0, 1}) {
          std::vector<float> g = Gaussian(n + misalign, 7 + n, 4.0f), u = Gaussian(n + misalign, 9 + n);
          if (n > 4) {  // the table's clamps and the exp range
            g[misalign] = -12.0f;
            g[misalign + 1] = 11.0f;
            g[misalign + 2] = -800.0f;
            g[misalign + 3] = 95.0f;
          }
          std::vector<float> a(n + misalign), b(n + misalign);
          ref.layer.gated_activation(act, g.data() + misalign, u.data() + misalign, n, a.data());
          t->layer.gated_activation(act, g.data() + misalign, u.data() + misalign, n, b.data() + misalign);
          for (int64_t i = 0; i < n; ++i) {
            if (act == Activation::kGeluTanhF16Table) {
              ASSERT_EQ(Bits(a[i]), Bits(b[i + misalign])) << t->isa << " n=" << n << " i=" << i;
            } else {
              // The activation is within a float ulp of ref's; times up, two roundings. GELU's
              // tail below ~1e-17 (where ref's tanh saturates) differs in absolute terms only.
              ASSERT_TRUE(CloseRel(a[i], b[i + misalign], 2.5e-7) ||
                          std::fabs(a[i] - b[i + misalign]) < 1e-12f)
                  << t->isa << " act=" << static_cast<int>(act) << " n=" << n << " i=" << i
                  << " x=" << g[i + misalign] << " " << a[i] << " vs " << b[i + misalign];
            }
          }
        }
      }
    }
  }
}

TEST(LayerKernels, AddMatchesRef) {
  for (const KernelTable* t : FastTables()) {
    for (int64_t n : {0, 1, 7, 8, 9, 16, 17, 33, 576, 1001}) {
      std::vector<float> x = Gaussian(n + 1, 3), y = Gaussian(n + 1, 4), a = x, b = x;
      RefKernelTable().layer.add(a.data() + 1, y.data() + 1, n);
      t->layer.add(b.data() + 1, y.data() + 1, n);
      for (int64_t i = 0; i <= n; ++i) ASSERT_EQ(Bits(a[i]), Bits(b[i])) << t->isa << " n=" << n;
    }
  }
}

// ─── Attention ───────────────────────────────────────────────────────────────────────────

struct AttnCase {
  int head_dim;
  int n_heads_kv;
  int group;
  int n_tok;
  int32_t first_pos;  // position of the first query token (positions consecutive)
  int32_t window;     // 0 = full causal
  DType dtype;
  bool round_qp;
  bool paged;
};

std::string Name(const AttnCase& c) {
  return "hd=" + std::to_string(c.head_dim) + " kv=" + std::to_string(c.n_heads_kv) +
         " group=" + std::to_string(c.group) + " n_tok=" + std::to_string(c.n_tok) +
         " pos0=" + std::to_string(c.first_pos) + " window=" + std::to_string(c.window) +
         " f16=" + std::to_string(c.dtype == DType::kF16) + " round=" + std::to_string(c.round_qp) +
         " paged=" + std::to_string(c.paged);
}

// KV storage for n_pos positions (shuffled blocks when paged) and a view over it.
struct KvFixture {
  std::vector<uint8_t> k, v;
  std::vector<int32_t> block_ids;
  KvView view;
  float max_abs_v = 0.0f;

  KvFixture(const AttnCase& c, int32_t n_pos, uint32_t seed) {
    const size_t elem = c.dtype == DType::kF16 ? 2 : 4;
    const size_t pos_stride = static_cast<size_t>(c.n_heads_kv) * c.head_dim * elem;
    constexpr int32_t kBlock = 16;
    const int32_t n_blocks = (n_pos + kBlock - 1) / kBlock + 2;
    const size_t n_slots = static_cast<size_t>(n_blocks) * kBlock;
    std::vector<float> kf = Gaussian(n_slots * c.n_heads_kv * c.head_dim, seed, 1.0f);
    std::vector<float> vf = Gaussian(n_slots * c.n_heads_kv * c.head_dim, seed + 1, 1.0f);
    k.resize(n_slots * pos_stride + 3);
    v.resize(n_slots * pos_stride + 3);
    for (size_t i = 0; i < kf.size(); ++i) {
      if (c.dtype == DType::kF16) {
        const uint16_t hk = Fp32ToFp16(kf[i]), hv = Fp32ToFp16(vf[i]);
        std::memcpy(k.data() + 1 + 2 * i, &hk, 2);  // +1: misaligned rows
        std::memcpy(v.data() + 1 + 2 * i, &hv, 2);
        max_abs_v = std::max(max_abs_v, std::fabs(Fp16ToFp32(hv)));
      } else {
        std::memcpy(k.data() + 1 + 4 * i, &kf[i], 4);
        std::memcpy(v.data() + 1 + 4 * i, &vf[i], 4);
        max_abs_v = std::max(max_abs_v, std::fabs(vf[i]));
      }
    }
    view.dtype = c.dtype;
    view.k = k.data() + 1;
    view.v = v.data() + 1;
    view.pos_stride = pos_stride;
    view.head_dim = c.head_dim;
    if (c.paged) {
      block_ids.resize(n_blocks);
      std::iota(block_ids.begin(), block_ids.end(), 0);
      std::shuffle(block_ids.begin(), block_ids.end(), std::mt19937(seed));
      view.block_ids = block_ids.data();
      view.block_tokens = kBlock;
    }
  }
};

// Runs `fn` (an AttentionFn or a callable with its arguments) over the case's query rows as
// one block per kv head; returns out. scale 0 = 1 / sqrt(head_dim).
template <class Fn>
std::vector<float> RunAttention(Fn fn, const AttnCase& c, const KvView& kv,
                                const std::vector<float>& q, int q_offset, float scale = 0.0f) {
  const int n_heads = c.n_heads_kv * c.group;
  const size_t q_row = static_cast<size_t>(n_heads) * c.head_dim;
  std::vector<float> out(c.n_tok * q_row + q_offset, -7.0f);
  std::vector<int32_t> begin(c.n_tok), end(c.n_tok);
  int32_t lo = INT32_MAX, hi = 0;
  for (int t = 0; t < c.n_tok; ++t) {
    const int32_t pos = c.first_pos + t;
    begin[t] = c.window > 0 ? std::max<int32_t>(0, pos - c.window + 1) : 0;
    end[t] = pos + 1;
    lo = std::min(lo, begin[t]);
    hi = std::max(hi, end[t]);
  }
  std::vector<float> scratch(AttentionScratchFloats(c.n_tok * c.group, hi - lo, c.head_dim) + 1);
  for (int h = 0; h < c.n_heads_kv; ++h) {
    AttentionBlock b;
    b.q = q.data() + q_offset + static_cast<size_t>(h) * c.group * c.head_dim;
    b.out = out.data() + q_offset + static_cast<size_t>(h) * c.group * c.head_dim;
    b.q_tok_stride = b.out_tok_stride = q_row;
    b.n_tok = c.n_tok;
    b.n_group = c.group;
    b.pos_begin = begin.data();
    b.pos_end = end.data();
    b.kv_head = h;
    b.scale = scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    b.round_qp = c.round_qp;
    fn(b, kv, scratch.data() + 1, scratch.size() - 1);  // +1: misaligned scratch
  }
  out.erase(out.begin(), out.begin() + q_offset);
  return out;
}

void CheckAttention(const AttnCase& c, uint32_t seed) {
  KvFixture kv(c, c.first_pos + c.n_tok, seed);
  const int q_offset = static_cast<int>(seed % 3);
  const size_t q_floats = static_cast<size_t>(c.n_tok) * c.n_heads_kv * c.group * c.head_dim;
  std::vector<float> q = Gaussian(q_floats + q_offset, seed + 2, 2.0f);
  const std::vector<float> want = RunAttention(RefKernelTable().layer.attention, c, kv.view, q, q_offset);
  const bool exact = c.round_qp && c.dtype == DType::kF16;
  for (const KernelTable* t : FastTables()) {
    const std::vector<float> got = RunAttention(t->layer.attention, c, kv.view, q, q_offset);
    for (size_t i = 0; i < want.size(); ++i) {
      if (exact) {
        ASSERT_EQ(Bits(want[i]), Bits(got[i]))
            << t->isa << " " << Name(c) << " i=" << i << " " << want[i] << " vs " << got[i];
      } else {
        ASSERT_LE(std::fabs(want[i] - got[i]), kMaxAttentionRelErr * kv.max_abs_v)
            << t->isa << " " << Name(c) << " i=" << i << " " << want[i] << " vs " << got[i];
      }
    }
    // Batch invariance: the last token alone gives the same bits as inside the block.
    AttnCase one = c;
    one.first_pos = c.first_pos + c.n_tok - 1;
    one.n_tok = 1;
    const size_t q_row = static_cast<size_t>(c.n_heads_kv) * c.group * c.head_dim;
    std::vector<float> q_last(q.begin() + q_offset + (c.n_tok - 1) * q_row, q.end());
    const std::vector<float> alone = RunAttention(t->layer.attention, one, kv.view, q_last, 0);
    for (size_t i = 0; i < q_row; ++i) {
      ASSERT_EQ(Bits(alone[i]), Bits(got[(c.n_tok - 1) * q_row + i])) << t->isa << " " << Name(c);
    }
  }
}

TEST(LayerKernels, AttentionMatchesRef) {
  uint32_t seed = 100;
  for (int hd : {64, 80, 128, 256, 40, 72}) {
    for (DType dt : {DType::kF16, DType::kF32}) {
      for (bool round_qp : {true, false}) {
        if (round_qp && dt == DType::kF32) continue;  // rounding applies to f16 views only
        const AttnCase cases[] = {
            {hd, 1, 1, 1, 0, 0, dt, round_qp, false},      // one position
            {hd, 2, 3, 1, 130, 0, dt, round_qp, true},     // decode, GQA 3, paged
            {hd, 1, 4, 5, 61, 0, dt, round_qp, false},     // prefill tile across a 64 boundary
            {hd, 2, 1, 3, 200, 37, dt, round_qp, true},    // sliding window
            {hd, 1, 7, 2, 9, 0, dt, round_qp, true},       // GQA 7 (Qwen2.5-0.5B ratio)
            {hd, 1, 2, 16, 100, 64, dt, round_qp, false},  // 16-token tile, window = block
        };
        for (const AttnCase& c : cases) {
          SCOPED_TRACE(Name(c));
          CheckAttention(c, ++seed);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(LayerKernels, AttentionLongContextF16Rounded) {
  // Many 64-position lanes and a tail: 1000 positions, decode and a 4-token tile.
  CheckAttention({64, 1, 3, 1, 999, 0, DType::kF16, true, true}, 7);
  CheckAttention({128, 1, 4, 4, 996, 0, DType::kF16, true, false}, 8);
  CheckAttention({64, 1, 3, 4, 996, 0, DType::kF32, false, true}, 9);
}

// ─── llama.cpp-exact kernels (kernels/ggml_exact.h): every table equals the scalar twin bit
// for bit, in both of llama.cpp's orders (decode and batched), on every case above plus
// extreme scores (exp underflow) and odd head dims (the scalar fallback).

void CheckGgmlAttention(const AttnCase& c, uint32_t seed, float scale) {
  KvFixture kv(c, c.first_pos + c.n_tok, seed);
  const int q_offset = static_cast<int>(seed % 3);
  const size_t q_floats = static_cast<size_t>(c.n_tok) * c.n_heads_kv * c.group * c.head_dim;
  const std::vector<float> q = Gaussian(q_floats + q_offset, seed + 2, 2.0f);
  for (bool batched : {false, true}) {
    auto with = [batched](ggml::AttentionFn fn) {
      return [fn, batched](const AttentionBlock& b, const KvView& v, float* s, size_t n) {
        fn(b, v, batched, s, n);
      };
    };
    const std::vector<float> want =
        RunAttention(with(RefKernelTable().layer.ggml_attention), c, kv.view, q, q_offset, scale);
    for (const KernelTable* t : FastTables()) {
      const std::vector<float> got =
          RunAttention(with(t->layer.ggml_attention), c, kv.view, q, q_offset, scale);
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(Bits(want[i]), Bits(got[i])) << t->isa << " " << Name(c) << " batched=" << batched
                                               << " i=" << i << " " << want[i] << " vs " << got[i];
      }
    }
  }
}

TEST(LayerKernels, GgmlAttentionMatchesScalarBitForBit) {
  uint32_t seed = 500;
  for (int hd : {16, 32, 64, 80, 96, 128, 256, 40}) {
    const AttnCase cases[] = {
        {hd, 1, 1, 1, 0, 0, DType::kF16, true, false},      // one position
        {hd, 2, 3, 1, 130, 0, DType::kF16, true, true},     // decode, GQA 3, paged
        {hd, 1, 4, 5, 61, 0, DType::kF16, true, false},     // tile across a 64 boundary
        {hd, 2, 1, 3, 200, 37, DType::kF16, true, true},    // sliding window
        {hd, 1, 7, 2, 9, 0, DType::kF16, true, true},       // GQA 7: one pass, 32 columns
        {hd, 1, 2, 16, 100, 64, DType::kF16, true, false},  // 16-token tile, window = block
        {hd, 1, 9, 1, 700, 0, DType::kF16, true, true},     // long decode, GQA 9: 5 + 4 heads
        {hd, 1, 16, 2, 150, 0, DType::kF16, true, true},    // GQA 16: 8 + 8 heads
    };
    for (const AttnCase& c : cases) {
      SCOPED_TRACE(Name(c));
      CheckGgmlAttention(c, ++seed, 0.0f);
      // Large scores: most exp terms underflow to 0 or become subnormal.
      CheckGgmlAttention(c, ++seed, 40.0f);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(LayerKernels, GgmlSwiGluMatchesScalarBitForBit) {
  std::vector<float> gate = Gaussian(4099, 31, 6.0f);
  const std::vector<float> up = Gaussian(4099, 32, 1.0f);
  // Exp's special ranges: overflow, underflow, subnormal results, signed zeros, infinities.
  const float special[] = {0.0f,   -0.0f,   88.0f,   88.8f,    89.0f,  -88.0f,     -87.3f,
                           -103.9f, -104.0f, -110.0f, 103.9f,  130.0f, -130.0f,   200.0f,
                           -200.0f, 1e-30f,  -1e-30f, INFINITY, -INFINITY, 3e38f, -3e38f};
  for (size_t i = 0; i < sizeof(special) / sizeof(float); ++i) gate[7 * i + 3] = special[i];
  for (size_t i = 0; i < 600; ++i) gate[2000 + i] = -150.0f + 0.5f * static_cast<float>(i);
  for (const KernelTable* t : FastTables()) {
    for (int64_t n : {0, 1, 15, 16, 17, 33, 4096, 4099}) {
      for (int64_t off : {0, 1, 2000}) {
        if (off + n > static_cast<int64_t>(gate.size())) continue;
        std::vector<float> want(n + 1, 5.0f), got(n + 1, 5.0f);
        RefKernelTable().layer.ggml_swiglu(gate.data() + off, up.data() + off, n, want.data());
        t->layer.ggml_swiglu(gate.data() + off, up.data() + off, n, got.data());
        for (int64_t i = 0; i <= n; ++i) {
          ASSERT_EQ(Bits(want[i]), Bits(got[i]))
              << t->isa << " n=" << n << " off=" << off << " gate=" << gate[off + i];
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kernels
