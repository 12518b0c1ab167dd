// CPU backend: every op through the kernel table (matmuls: quantize each activation row once,
// then gemm or one vec_dot per output element; attention: tiles of query rows per kv head),
// parallel over rows, tiles or elements with the pool.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "base/aligned.h"
#include "base/check.h"
#include "kernels/pack.h"

namespace kiln::backend {
namespace {

// Output rows per ParallelFor unit: a packed group (kernels/pack.h), and enough work per chunk
// to amortise the dispatch. Chunks start at multiples of it within each matrix.
constexpr int64_t kMatMulGrain = kernels::kPackRows;
// Elementwise ops: below this many values one thread is cheaper than waking the pool.
constexpr size_t kElementwiseGrain = 16384;
// Query rows per attention work item (tokens × heads of one GQA group), sharing K/V loads.
constexpr int kAttentionTileRows = 16;

// Row-wise ops on rows of `row_elems` values: at least `min_rows` rows and about
// kElementwiseGrain values per chunk.
size_t GrainFor(size_t row_elems, size_t min_rows) {
  return std::max(min_rows, kElementwiseGrain / std::max<size_t>(row_elems, 1));
}

// KILN_PROFILE=1: wall time per op kind, printed to stderr when the backend is destroyed
// (a timer profile for finding the next cost; off by default, one branch per op).
enum class Op { kMatMulQuantize, kMatMul, kEmbedding, kRmsNorm, kRope, kAttention, kActivation, kAdd, kCount };
constexpr const char* kOpNames[] = {"matmul: quantize activations", "matmul: products", "embedding",
                                    "rms_norm", "rope", "attention", "gated activation", "add"};

class Profile {
 public:
  explicit Profile(bool on) : on_(on) {}
  ~Profile() {
    if (!on_) return;
    double total = 0;
    for (double ms : ms_) total += ms;
    std::fprintf(stderr, "kiln profile (wall ms per op kind):\n");
    for (int i = 0; i < static_cast<int>(Op::kCount); ++i) {
      std::fprintf(stderr, "  %-30s %10.1f ms %6.1f %% %8lld calls\n", kOpNames[i], ms_[i],
                   total > 0 ? 100.0 * ms_[i] / total : 0.0, calls_[i]);
    }
  }
  bool on() const { return on_; }
  void Add(Op op, double ms) {
    ms_[static_cast<int>(op)] += ms;
    ++calls_[static_cast<int>(op)];
  }

 private:
  bool on_;
  double ms_[static_cast<int>(Op::kCount)] = {};
  long long calls_[static_cast<int>(Op::kCount)] = {};
};

class ScopedOp {
 public:
  ScopedOp(Profile& p, Op op) : p_(p), op_(op) {
    if (p_.on()) t0_ = std::chrono::steady_clock::now();
  }
  ~ScopedOp() {
    if (p_.on()) {
      p_.Add(op_, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count());
    }
  }

 private:
  Profile& p_;
  Op op_;
  std::chrono::steady_clock::time_point t0_;
};

// KILN_REPACK=0 keeps weights in their file layout (to compare numerics or speed).
bool RepackRequested() {
  const char* env = std::getenv("KILN_REPACK");
  return env == nullptr || std::string(env) != "0";
}

// Packed weights: base/aligned.h's LargeAlloc (huge pages where the kernel grants them).
struct FreeDeleter {
  void operator()(uint8_t* p) const { AlignedFree(p); }
};
using AlignedBytes = std::unique_ptr<uint8_t, FreeDeleter>;

bool ProfileRequested() {
  const char* env = std::getenv("KILN_PROFILE");
  return env != nullptr && *env != '\0' && *env != '0';
}

class CpuBackend final : public Backend {
 public:
  std::string KernelIsa() const override { return table_.isa; }
  CpuBackend(ThreadPool* pool, const kernels::KernelTable& table)
      : pool_(pool), table_(table), layer_(table.layer), profile_(ProfileRequested()) {
    // Tables built by hand (tests) may leave layer ops out: use the reference ones.
    // KILN_LAYER_KERNELS=ref keeps the table's matmuls but the reference layer ops (to tell
    // which half of a table a numerical difference comes from).
    const kernels::LayerKernels& ref = kernels::RefKernelTable().layer;
    const char* env = std::getenv("KILN_LAYER_KERNELS");
    if (env != nullptr && std::string(env) == "ref") layer_ = ref;
    if (layer_.attention == nullptr) layer_.attention = ref.attention;
    if (layer_.rms_norm == nullptr) layer_.rms_norm = ref.rms_norm;
    if (layer_.rope == nullptr) layer_.rope = ref.rope;
    if (layer_.gated_activation == nullptr) layer_.gated_activation = ref.gated_activation;
    if (layer_.add == nullptr) layer_.add = ref.add;
    if (layer_.ggml_attention == nullptr) layer_.ggml_attention = ref.ggml_attention;
    if (layer_.ggml_swiglu == nullptr) layer_.ggml_swiglu = ref.ggml_swiglu;
  }

  Status CheckWeightType(DType dtype) const override {
    const kernels::TypeKernels& k = table_.For(dtype);
    if (k.quantize_dot == nullptr || k.vec_dot == nullptr || k.dequantize == nullptr) {
      return Unimplemented("weight type %s has no %s kernels", DTypeName(dtype),
                           table_.isa.c_str());
    }
    return Status::Ok();
  }

  // Packs matrices of a type with a packed layout (Q4_0, Q5_0, Q8_0, Q4_K, Q6_K: kernels/pack.h)
  // whose rows fill groups of 16, when this table has its own packed gemm sharing the original
  // type's activation quantizer (so MatMulShared still converts the activations once). The
  // packing is split over the pool by groups.
  void PrepareMatMulWeight(Matrix* m) override {
    const std::optional<DType> packed = kernels::PackedTypeOf(m->dtype);
    if (!packed.has_value() || !repack_ || m->rows % kernels::kPackRows != 0) return;
    const kernels::TypeKernels& pk = table_.For(*packed);
    if (pk.gemm == nullptr || pk.quantize_dot != table_.For(m->dtype).quantize_dot) return;
    const size_t bytes = static_cast<size_t>(m->rows) * m->row_bytes;
    AlignedBytes buf(static_cast<uint8_t*>(LargeAlloc(bytes)));
    KILN_CHECK(buf != nullptr) << "out of memory packing " << bytes << " bytes";
    const size_t groups = static_cast<size_t>(m->rows / kernels::kPackRows);
    const size_t group_bytes = kernels::kPackRows * m->row_bytes;
    const DType from = m->dtype;
    uint8_t* dst = buf.get();
    const uint8_t* src = m->data;
    ParallelFor(pool_, 0, groups, 64, [&](size_t g0, size_t g1) {
      kernels::PackRows(from, src + g0 * group_bytes, m->row_bytes,
                        static_cast<int64_t>(g1 - g0) * kernels::kPackRows, m->cols,
                        dst + g0 * group_bytes);
    });
    m->dtype = *packed;
    m->data = buf.get();
    packed_.push_back(std::move(buf));
  }
  int64_t PackedMatrices() const override { return static_cast<int64_t>(packed_.size()); }

  void Reserve(int64_t max_tokens, int64_t max_cols, int32_t max_positions) override {
    // Q8_K is the widest dot type per element (292 bytes / 256); f32 is 4 bytes / element.
    size_t per_row = static_cast<size_t>(max_cols) * 4 + 512;
    if (act_scratch_.size() < static_cast<size_t>(max_tokens) * per_row) {
      act_scratch_.resize(static_cast<size_t>(max_tokens) * per_row);
    }
    max_positions_ = std::max(max_positions_, max_positions);
  }

  void MatMul(const Matrix& w, const float* x, int64_t n_tokens, const float* bias,
              float* out) override {
    const MatMulOut one{&w, bias, out};
    MatMulShared(&one, 1, x, n_tokens);
  }

  void MatMulShared(const MatMulOut* outs, int n, const float* x, int64_t n_tokens) override {
    KILN_CHECK(n >= 1) << "no matrices";
    const Matrix& w0 = *outs[0].w;
    const kernels::TypeKernels& k = table_.For(w0.dtype);
    KILN_CHECK(k.quantize_dot != nullptr && (k.vec_dot != nullptr || k.gemm != nullptr))
        << "no dot kernel for " << DTypeName(w0.dtype);
    for (int i = 1; i < n; ++i) {
      const Matrix& w = *outs[i].w;
      if (w.cols != w0.cols || table_.For(w.dtype).dot_type != k.dot_type ||
          table_.For(w.dtype).quantize_dot != k.quantize_dot) {
        for (int j = 0; j < n; ++j) MatMul(*outs[j].w, x, n_tokens, outs[j].bias, outs[j].out);
        return;  // different activation types: one conversion each
      }
    }
    const std::optional<size_t> act_row_bytes = RowBytes(k.dot_type, w0.cols);
    KILN_CHECK(act_row_bytes.has_value()) << "cols " << w0.cols << " vs " << DTypeName(k.dot_type);
    const size_t need = *act_row_bytes * static_cast<size_t>(n_tokens);
    if (act_scratch_.size() < need) act_scratch_.resize(need);  // only if Reserve was too small
    uint8_t* act = act_scratch_.data();
    {
      ScopedOp timer(profile_, Op::kMatMulQuantize);
      ParallelFor(pool_, 0, static_cast<size_t>(n_tokens), GrainFor(w0.cols, 1), [&](size_t t0, size_t t1) {
        for (size_t t = t0; t < t1; ++t) {
          k.quantize_dot(x + t * w0.cols, act + t * *act_row_bytes, w0.cols);
        }
      });
    }
    ScopedOp timer(profile_, Op::kMatMul);
    // One dispatch over the matrices' row units (kMatMulGrain rows, the last of a matrix
    // possibly short) laid end to end; a thread's range may span several matrices.
    int64_t total_units = 0;
    for (int i = 0; i < n; ++i) total_units += (outs[i].w->rows + kMatMulGrain - 1) / kMatMulGrain;
    ParallelFor(pool_, 0, static_cast<size_t>(total_units), 1, [&](size_t u0, size_t u1) {
      int64_t base = 0;
      for (int i = 0; i < n; ++i) {
        const int64_t rows = outs[i].w->rows;
        const int64_t units = (rows + kMatMulGrain - 1) / kMatMulGrain;
        const int64_t b = std::max<int64_t>(static_cast<int64_t>(u0) - base, 0);
        const int64_t e = std::min<int64_t>(static_cast<int64_t>(u1) - base, units);
        if (b < e) {
          Rows(table_.For(outs[i].w->dtype), outs[i], act, *act_row_bytes, n_tokens,
               b * kMatMulGrain, std::min(e * kMatMulGrain, rows));
        }
        base += units;
      }
    });
  }

  void EmbeddingRows(const Matrix& table, const int32_t* ids, int64_t n, float* out) override {
    ScopedOp timer(profile_, Op::kEmbedding);
    const bool packed = kernels::IsPacked(table.dtype);
    const kernels::TypeKernels& k = table_.For(kernels::UnpackedTypeOf(table.dtype));
    KILN_CHECK(k.dequantize != nullptr) << "no dequantize for " << DTypeName(table.dtype);
    if (packed && row_scratch_.size() < table.row_bytes) row_scratch_.resize(table.row_bytes);
    for (int64_t i = 0; i < n; ++i) {
      KILN_CHECK(ids[i] >= 0 && ids[i] < table.rows) << "token " << ids[i];
      const uint8_t* row = table.Row(ids[i]);
      if (packed) {  // a tied output head packed for MatMul: the row in the file's layout
        kernels::UnpackRow(table.dtype, table.data, table.row_bytes, ids[i], table.cols,
                           row_scratch_.data());
        row = row_scratch_.data();
      }
      k.dequantize(row, out + i * table.cols, table.cols);
    }
  }

  void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n_rows,
               int64_t dim, float* out) override {
    ScopedOp timer(profile_, Op::kRmsNorm);
    const kernels::RmsNormFn fn = ggml_exact_ ? kernels::ggml::RmsNorm : layer_.rms_norm;
    ParallelFor(pool_, 0, static_cast<size_t>(n_rows), GrainFor(dim, 4), [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r) fn(x + r * dim, w, w_offset, eps, dim, out + r * dim);
    });
  }

  void Rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const int32_t* positions,
            const float* inv_freq, RopeStyle style) override {
    ScopedOp timer(profile_, Op::kRope);
    const size_t stride = static_cast<size_t>(n_heads) * head_dim;
    const kernels::RopeFn fn = layer_.rope;
    ParallelFor(pool_, 0, static_cast<size_t>(n_tokens), GrainFor(stride, 1), [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) fn(x + t * stride, n_heads, head_dim, inv_freq, positions[t], style);
    });
  }

  void RopeGgml(float* x, int64_t n_tokens, int n_heads, int head_dim, const int32_t* positions,
                const kernels::ggml::RopeParams& rp, RopeStyle style) override {
    ScopedOp timer(profile_, Op::kRope);
    const size_t stride = static_cast<size_t>(n_heads) * head_dim;
    ParallelFor(pool_, 0, static_cast<size_t>(n_tokens), 1, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        kernels::ggml::Rope(x + t * stride, n_heads, head_dim, rp, positions[t], style);
      }
    });
  }

  // KILN_GGML_EXACT=0 keeps the table's general layer kernels for GGUF models too (their
  // results stay within float ulps of llama.cpp's, not bit for bit).
  void SetGgmlExact(bool on) override {
    const char* env = std::getenv("KILN_GGML_EXACT");
    ggml_exact_ = on && !(env != nullptr && std::string(env) == "0");
  }
  bool UsesRowOrders() const override { return ggml_exact_; }

  void Attention(const float* q, int64_t n_tokens, const int32_t* positions, const KvView& kv,
                 const AttentionParams& p, float* out) override;
  void AttentionBatch(const float* q, const int32_t* positions, const AttentionSeq* seqs,
                      int n_seqs, const KvView& kv, const AttentionParams& p,
                      float* out) override;

  void GatedActivation(Activation act, const float* gate, const float* up, int64_t n,
                       float* out) override {
    ScopedOp timer(profile_, Op::kActivation);
    const kernels::GatedActivationFn fn = layer_.gated_activation;
    const bool ggml_silu = ggml_exact_ && act == Activation::kSilu;
    ParallelFor(pool_, 0, static_cast<size_t>(n), 4096, [&](size_t b, size_t e) {
      const int64_t len = static_cast<int64_t>(e - b);
      if (ggml_silu) return layer_.ggml_swiglu(gate + b, up + b, len, out + b);
      fn(act, gate + b, up + b, len, out + b);
    });
  }

  void Add(float* x, const float* y, int64_t n) override {
    ScopedOp timer(profile_, Op::kAdd);
    const kernels::AddFn fn = layer_.add;
    ParallelFor(pool_, 0, static_cast<size_t>(n), kElementwiseGrain, [&](size_t b, size_t e) {
      fn(x + b, y + b, static_cast<int64_t>(e - b));
    });
  }

  void Scale(float* x, float s, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
  }

 private:
  // Rows [r0, r1) of o.w times the converted activations, for every token.
  static void Rows(const kernels::TypeKernels& k, const MatMulOut& o, const uint8_t* act,
                   size_t act_row_bytes, int64_t n_tokens, int64_t r0, int64_t r1) {
    const Matrix& w = *o.w;
    if (k.gemm != nullptr) {
      // Tiled kernel (one token: the table's multi-row matrix × vector): bit-identical to
      // vec_dot per (row, token) by the table's contract.
      k.gemm(w.data, w.row_bytes, act, act_row_bytes, n_tokens, w.cols, o.out, w.rows, r0, r1);
      if (o.bias == nullptr) return;
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t r = r0; r < r1; ++r) o.out[t * w.rows + r] += o.bias[r];
      }
      return;
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      const uint8_t* a = act + t * act_row_bytes;
      float* out = o.out + t * w.rows;
      for (int64_t r = r0; r < r1; ++r) {
        const float dot = k.vec_dot(w.Row(r), a, w.cols);
        out[r] = o.bias != nullptr ? dot + o.bias[r] : dot;
      }
    }
  }

  ThreadPool* pool_;
  const kernels::KernelTable& table_;
  kernels::LayerKernels layer_;  // table_.layer completed from the reference table
  bool ggml_exact_ = false;      // SetGgmlExact
  Profile profile_;
  std::vector<uint8_t> act_scratch_;  // quantized activation rows for MatMul
  std::vector<uint8_t> row_scratch_;  // one unpacked embedding row
  bool repack_ = RepackRequested();
  std::vector<AlignedBytes> packed_;  // weights PrepareMatMulWeight moved
  int32_t max_positions_ = 0;
};

void CpuBackend::Attention(const float* q, int64_t n_tokens, const int32_t* positions,
                           const KvView& kv, const AttentionParams& p, float* out) {
  const AttentionSeq seq{0, n_tokens, kv.block_ids};
  AttentionBatch(q, positions, &seq, 1, kv, p, out);
}

// Query heads per attention work item: a divisor of the GQA group. An item converts its K/V
// rows once and reuses them for each of its heads, so fewer, larger items do less work, but
// the threads must stay busy: take the divisor with the least work on the busiest thread,
// ceil(items / threads) × (1 + heads), counting a head's scores + P·V and the item's K/V pass
// as one unit each (ties: more heads). Decode of Qwen2.5-0.5B (2 kv heads × 7, 2 threads):
// one item of 7 heads per thread instead of 7 items of one head, each re-reading the rows.
int AttentionHeadsPerItem(int64_t tile_kv_units, int group, int n_threads) {
  int best = 1;
  int64_t best_cost = INT64_MAX;
  for (int h = group; h >= 1; --h) {
    if (group % h != 0) continue;
    const int64_t items = tile_kv_units * (group / h);
    const int64_t cost = (items + n_threads - 1) / n_threads * (1 + h);
    if (cost < best_cost) {
      best = h;
      best_cost = cost;
    }
  }
  return best;
}

// Work item = a tile of one sequence's tokens × a run of heads of one kv head's group. Prefill
// shares each K/V row across up to kAttentionTileRows query rows; when the whole batch has few
// items (decode of few sequences) the group is split so every thread gets work. The items of
// all sequences go to one ParallelFor.
void CpuBackend::AttentionBatch(const float* q, const int32_t* positions, const AttentionSeq* seqs,
                                int n_seqs, const KvView& kv, const AttentionParams& p,
                                float* out) {
  ScopedOp timer(profile_, Op::kAttention);
  KILN_CHECK(p.n_heads_kv > 0 && p.n_heads % p.n_heads_kv == 0) << p.n_heads << "/" << p.n_heads_kv;
  KILN_CHECK(p.head_dim == kv.head_dim) << p.head_dim << " vs " << kv.head_dim;
  const int group = p.n_heads / p.n_heads_kv;
  const int tile_cap = std::max(1, kAttentionTileRows / group);
  int64_t total_tiles = 0;
  for (int s = 0; s < n_seqs; ++s) {
    KILN_CHECK(seqs[s].end > seqs[s].begin) << "empty attention sequence";
    const int64_t n = seqs[s].end - seqs[s].begin;
    const int64_t tile_tok = std::min<int64_t>(tile_cap, n);
    total_tiles += (n + tile_tok - 1) / tile_tok;
  }
  const int n_threads = pool_ != nullptr ? pool_->NumThreads() : 1;
  const int heads_per_item = AttentionHeadsPerItem(total_tiles * p.n_heads_kv, group, n_threads);
  const int splits = group / heads_per_item;
  const size_t per_rank = static_cast<size_t>(p.n_heads_kv) * splits;
  // item_end[s]: one past sequence s's last item.
  thread_local std::vector<size_t> item_end;
  item_end.resize(n_seqs);
  size_t n_items = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const int64_t n = seqs[s].end - seqs[s].begin;
    const int64_t tile_tok = std::min<int64_t>(tile_cap, n);
    n_items += static_cast<size_t>((n + tile_tok - 1) / tile_tok) * per_rank;
    item_end[s] = n_items;
  }
  const size_t* ends = item_end.data();
  const size_t q_row = static_cast<size_t>(p.n_heads) * p.head_dim;
  const kernels::AttentionFn fn = layer_.attention;
  ParallelFor(pool_, 0, n_items, 1, [&](size_t i0, size_t i1) {
    // Sized once per thread for the planned context, then reused.
    thread_local std::vector<float> scratch;
    int s = static_cast<int>(std::upper_bound(ends, ends + n_seqs, i0) - ends);
    for (size_t i = i0; i < i1; ++i) {
      while (i >= ends[s]) ++s;
      const AttentionSeq& seq = seqs[s];
      const int64_t n_tokens = seq.end - seq.begin;
      const int tile_tok = static_cast<int>(std::min<int64_t>(tile_cap, n_tokens));
      const int64_t n_tiles = (n_tokens + tile_tok - 1) / tile_tok;
      const size_t local = i - (s == 0 ? 0 : ends[s - 1]);
      // Tile ranks alternate cheap (early) and costly (late, causal) tiles so a contiguous
      // split of the items gives every thread a similar share of the work.
      const int64_t rank = static_cast<int64_t>(local / per_rank);
      const int64_t tile = rank % 2 == 0 ? rank / 2 : n_tiles - 1 - rank / 2;
      const int kv_head = static_cast<int>(local % per_rank) / splits;
      const int head0 = kv_head * group + static_cast<int>(local % per_rank) % splits * heads_per_item;
      const int64_t t0 = seq.begin + tile * tile_tok;  // batch row of the tile's first token
      const int n_tok = static_cast<int>(std::min<int64_t>(tile_tok, seq.end - t0));
      int32_t begin[kAttentionTileRows], end[kAttentionTileRows];
      int32_t lo = INT32_MAX, hi = 0;
      for (int t = 0; t < n_tok; ++t) {
        const int32_t pos = positions[t0 + t];
        begin[t] = p.window > 0 ? std::max<int32_t>(0, pos - p.window + 1) : 0;
        end[t] = pos + 1;
        lo = std::min(lo, begin[t]);
        hi = std::max(hi, end[t]);
      }
      const size_t need = kernels::AttentionScratchFloats(n_tok * heads_per_item, hi - lo, p.head_dim);
      if (scratch.size() < need) {
        scratch.resize(std::max(need, kernels::AttentionScratchFloats(
                                          kAttentionTileRows, max_positions_ + tile_tok, p.head_dim)));
      }
      KvView view = kv;
      view.block_ids = seq.block_ids;
      kernels::AttentionBlock b;
      b.q = q + t0 * q_row + static_cast<size_t>(head0) * p.head_dim;
      b.out = out + t0 * q_row + static_cast<size_t>(head0) * p.head_dim;
      b.q_tok_stride = b.out_tok_stride = q_row;
      b.n_tok = n_tok;
      b.n_group = heads_per_item;
      b.pos_begin = begin;
      b.pos_end = end;
      b.kv_head = kv_head;
      b.scale = p.scale;
      b.round_qp = p.round_qp_to_kv_dtype;
      if (!(ggml_exact_ && kv.dtype == DType::kF16)) {
        fn(b, view, scratch.data(), scratch.size());
        continue;
      }
      // llama.cpp's path, one run of rows of equal order (AttentionParams::row_orders) at a time.
      auto order_of = [&](int t) {
        if (p.row_orders != nullptr) return p.row_orders[t0 + t];
        return n_tokens >= 2 ? RowOrder::kBatched : RowOrder::kSingle;
      };
      for (int r0 = 0; r0 < n_tok;) {
        const RowOrder order = order_of(r0);
        int r1 = r0 + 1;
        while (r1 < n_tok && order_of(r1) == order) ++r1;
        kernels::AttentionBlock run = b;
        run.q += r0 * q_row;
        run.out += r0 * q_row;
        run.n_tok = r1 - r0;
        run.pos_begin = begin + r0;
        run.pos_end = end + r0;
        layer_.ggml_attention(run, view, order == RowOrder::kBatched, scratch.data(), scratch.size());
        r0 = r1;
      }
    }
  });
}

}  // namespace

void RopeInvFreq(int head_dim, float theta, const RopeScaling& scaling, const float* freq_factors,
                 float* inv_freq) {
  kernels::ref::RopeInvFreq(head_dim, theta, scaling, freq_factors, inv_freq);
}

std::unique_ptr<Backend> MakeCpuBackend(ThreadPool* pool, const kernels::KernelTable& table) {
  return std::make_unique<CpuBackend>(pool, table);
}

}  // namespace kiln::backend

namespace kiln::backend {

std::unique_ptr<Backend> MakeCpuBackend(ThreadPool* pool) {
  return MakeCpuBackend(pool, kernels::ActiveKernelTable());
}

}  // namespace kiln::backend
