// Model loading and the forward pass: embeddings → n_layers × (attention block, FFN block)
// → final norm → output head, for every architecture ModelConfig can describe.
#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "base/logging.h"

namespace kiln::model {

size_t Batch::NumLogitRows() const {
  size_t n = 0;
  for (const BatchRow& r : rows) n += r.want_logits;
  return n;
}

Status Context::Truncate(int32_t n_keep) {
  if (n_keep < 0 || n_keep > n_past_) {
    return InvalidArgument("cannot truncate a context of %d positions to %d", n_past_, n_keep);
  }
  n_past_ = n_keep;
  return Status::Ok();
}

Model::~Model() = default;

StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& path, const LoadOptions& opts) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<io::TensorSource> source, io::OpenTensorSource(path));
  return Load(std::move(source), opts);
}

StatusOr<std::unique_ptr<Model>> Model::Load(std::unique_ptr<io::TensorSource> source,
                                             const LoadOptions& opts) {
  if (source == nullptr) return InvalidArgument("no tensor source");
  if (opts.kv_dtype != DType::kF16 && opts.kv_dtype != DType::kF32) {
    return InvalidArgument("KV cache dtype must be f16 or f32, got %s", DTypeName(opts.kv_dtype));
  }
  if (opts.max_batch <= 0 || opts.n_ctx < 0 || opts.n_threads < 0) {
    return InvalidArgument("bad load options (n_threads %d, n_ctx %d, max_batch %d)",
                           opts.n_threads, opts.n_ctx, opts.max_batch);
  }
  std::unique_ptr<Model> m(new Model());
  m->source_ = std::move(source);
  m->opts_ = opts;
  KILN_RETURN_IF_ERROR(m->Init());
  return m;
}

Status Model::Init() {
  KILN_ASSIGN_OR_RETURN(config_, ConfigFromSource(*source_));
  if (opts_.n_ctx == 0) opts_.n_ctx = std::min<int32_t>(config_.context_length, 4096);
  const int n_threads = opts_.n_threads > 0 ? opts_.n_threads : HardwareConcurrency();
  pool_ = std::make_unique<ThreadPool>(n_threads);
  backend_ = backend::MakeCpuBackend(pool_.get());
  KILN_ASSIGN_OR_RETURN(weights_, Weights::Load(*source_, config_, *backend_));

  const int hd = config_.head_dim;
  inv_freq_global_.resize(hd / 2);
  backend::RopeInvFreq(hd, config_.rope_theta, config_.rope_scaling, weights_->rope_freqs,
                       inv_freq_global_.data());
  if (config_.local_rope) {
    inv_freq_local_.resize(hd / 2);
    backend::RopeInvFreq(hd, config_.rope_theta_local, backend::RopeScaling{}, nullptr,
                         inv_freq_local_.data());
  }
  // llama.cpp's arithmetic for GGUF files (judged against it), f16 cache (its default) only.
  ggml_exact_ = config_.ggml_attention_rounding && opts_.kv_dtype == DType::kF16;
  backend_->SetGgmlExact(ggml_exact_);
  const float freq_scale = config_.rope_scaling.type == backend::RopeScalingType::kLinear
                               ? 1.0f / config_.rope_scaling.factor : 1.0f;
  rope_ggml_global_ = kernels::ggml::MakeRopeParams(config_.rope_theta, hd, freq_scale,
                                                    weights_->rope_freqs);
  rope_ggml_local_ = kernels::ggml::MakeRopeParams(config_.rope_theta_local, hd, 1.0f, nullptr);

  const size_t b = static_cast<size_t>(opts_.max_batch);
  const size_t e = config_.n_embd, q_dim = size_t{1} * config_.n_heads * hd,
               kv_dim = size_t{1} * config_.n_heads_kv * hd, ff = config_.n_ff;
  arena_.ids.resize(b);
  arena_.pos.resize(b);
  arena_.slots.resize(b);
  arena_.orders.resize(b);
  arena_.x.resize(b * e);
  arena_.xn.resize(b * e);
  arena_.tmp.resize(b * e);
  arena_.q.resize(b * q_dim);
  arena_.attn.resize(b * q_dim);
  arena_.k.resize(b * kv_dim);
  arena_.v.resize(b * kv_dim);
  arena_.gate.resize(b * ff);
  arena_.up.resize(b * ff);
  backend_->Reserve(opts_.max_batch, std::max<int64_t>({int64_t(e), int64_t(q_dim), int64_t(ff)}),
                    opts_.n_ctx);
  KILN_LOG(kInfo, "loaded %s", config_.DebugString().c_str());
  return Status::Ok();
}

StatusOr<std::unique_ptr<Context>> Model::NewContext(int32_t n_ctx) const {
  kv::KvCacheOptions o;
  o.n_layers = config_.n_layers;
  o.n_ctx = n_ctx > 0 ? n_ctx : opts_.n_ctx;
  o.n_heads_kv = config_.n_heads_kv;
  o.head_dim = config_.head_dim;
  o.dtype = opts_.kv_dtype;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kv::KvCache> cache, kv::KvCache::Create(o));
  return std::unique_ptr<Context>(new Context(std::move(cache)));
}

Status Model::Forward(const Batch& batch, Context& ctx, std::vector<float>* logits) {
  if (batch.rows.empty()) return InvalidArgument("empty batch");
  const kv::KvCacheOptions& kvo = ctx.kv_->options();
  if (kvo.n_layers != config_.n_layers || kvo.n_heads_kv != config_.n_heads_kv ||
      kvo.head_dim != config_.head_dim) {
    return InvalidArgument("context was created by a different model");
  }
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const BatchRow& row = batch.rows[r];
    if (row.token < 0 || row.token >= config_.n_vocab) {
      return InvalidArgument("batch row %zu: token id %d is outside the vocabulary [0, %lld)", r,
                             row.token, static_cast<long long>(config_.n_vocab));
    }
    if (row.seq_idx != 0) {
      return InvalidArgument("batch row %zu: seq_idx %d, but a Context holds one sequence (0)", r,
                             row.seq_idx);
    }
    const int32_t want_pos = ctx.n_past() + static_cast<int32_t>(r);
    if (row.pos != want_pos) {
      return InvalidArgument("batch row %zu: position %d, expected %d (positions continue the "
                             "context one by one)", r, row.pos, want_pos);
    }
    if (row.pos >= ctx.n_ctx()) {
      return ResourceExhausted("context full: position %d does not fit n_ctx %d", row.pos,
                               ctx.n_ctx());
    }
  }
  const size_t n_logit_rows = batch.NumLogitRows();
  logits->resize(n_logit_rows * static_cast<size_t>(config_.n_vocab));
  float* out = logits->data();
  for (size_t r0 = 0; r0 < batch.rows.size(); r0 += opts_.max_batch) {
    const size_t r1 = std::min(batch.rows.size(), r0 + static_cast<size_t>(opts_.max_batch));
    ForwardRows(batch, r0, r1, ctx, out);
    for (size_t r = r0; r < r1; ++r) out += batch.rows[r].want_logits ? config_.n_vocab : 0;
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<kv::KvCache>> Model::NewPagedStorage(int32_t n_blocks,
                                                              int32_t block_tokens) const {
  if (n_blocks <= 0 || block_tokens <= 0) {
    return InvalidArgument("paged KV needs blocks (got %d x %d tokens)", n_blocks, block_tokens);
  }
  kv::KvCacheOptions o;
  o.n_layers = config_.n_layers;
  o.n_ctx = n_blocks * block_tokens;
  o.n_heads_kv = config_.n_heads_kv;
  o.head_dim = config_.head_dim;
  o.dtype = opts_.kv_dtype;
  return kv::KvCache::Create(o);
}

double Model::DecodeBytesRead(int32_t position) const {
  auto bytes = [](const backend::Matrix& m) { return static_cast<double>(m.rows) * m.row_bytes; };
  const ModelConfig& c = config_;
  const Weights& w = *weights_;
  const double e = static_cast<double>(c.n_embd);
  const double q_dim = static_cast<double>(c.n_heads) * c.head_dim;
  const double kv_dim = static_cast<double>(c.n_heads_kv) * c.head_dim;
  const double kv_elem = opts_.kv_dtype == DType::kF16 ? 2 : 4;
  double total = bytes(w.output) + static_cast<double>(w.token_embd.row_bytes) + 4 * e;
  for (int il = 0; il < c.n_layers; ++il) {
    const LayerWeights& l = w.layers[il];
    for (const backend::Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      total += bytes(*m);
    }
    total += 4 * e * (c.post_norms ? 4 : 2);                 // norms (f32)
    if (c.qkv_bias) total += 4 * (q_dim + 2 * kv_dim);
    if (c.qk_norm) total += 4 * 2.0 * c.head_dim;
    int64_t attended = static_cast<int64_t>(position) + 1;
    if (c.IsSliding(il)) attended = std::min<int64_t>(attended, c.sliding_window);
    total += 2 * kv_dim * kv_elem * static_cast<double>(attended);
  }
  return total;
}

size_t Model::KvBytesPerToken() const {
  const size_t elem = opts_.kv_dtype == DType::kF16 ? 2 : 4;
  return 2 * elem * config_.n_layers * static_cast<size_t>(config_.n_heads_kv) * config_.head_dim;
}

Status Model::ForwardPaged(const Batch& batch, const PagedKv& kv, std::vector<float>* logits) {
  if (batch.rows.empty()) return InvalidArgument("empty batch");
  if (kv.storage == nullptr || kv.block_tokens <= 0) return InvalidArgument("no paged KV");
  const kv::KvCacheOptions& kvo = kv.storage->options();
  if (kvo.n_layers != config_.n_layers || kvo.n_heads_kv != config_.n_heads_kv ||
      kvo.head_dim != config_.head_dim) {
    return InvalidArgument("KV storage was created by a different model");
  }
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const BatchRow& row = batch.rows[r];
    if (row.token < 0 || row.token >= config_.n_vocab) {
      return InvalidArgument("batch row %zu: token id %d is outside the vocabulary [0, %lld)", r,
                             row.token, static_cast<long long>(config_.n_vocab));
    }
    if (row.seq_idx < 0 || static_cast<size_t>(row.seq_idx) >= kv.tables.size() ||
        kv.tables[row.seq_idx] == nullptr) {
      return InvalidArgument("batch row %zu: seq_idx %d has no block table", r, row.seq_idx);
    }
    const std::vector<int32_t>& table = *kv.tables[row.seq_idx];
    if (row.pos < 0 || static_cast<size_t>(row.pos / kv.block_tokens) >= table.size()) {
      return InvalidArgument("batch row %zu: position %d is outside the sequence's %zu blocks", r,
                             row.pos, table.size());
    }
    for (int32_t b : table) {
      if (b < 0 || static_cast<int64_t>(b + 1) * kv.block_tokens > kvo.n_ctx) {
        return InvalidArgument("batch row %zu: block %d outside the KV storage", r, b);
      }
    }
  }
  const size_t n_logit_rows = batch.NumLogitRows();
  logits->resize(n_logit_rows * static_cast<size_t>(config_.n_vocab));
  float* out = logits->data();
  for (size_t r0 = 0; r0 < batch.rows.size(); r0 += opts_.max_batch) {
    const size_t r1 = std::min(batch.rows.size(), r0 + static_cast<size_t>(opts_.max_batch));
    if (!ForwardRowsPaged(batch, r0, r1, kv, out)) return Cancelled("forward aborted");
    for (size_t r = r0; r < r1; ++r) out += batch.rows[r].want_logits ? config_.n_vocab : 0;
  }
  return Status::Ok();
}

const float* Model::InvFreq(int il) const {
  return config_.local_rope && config_.IsSliding(il) ? inv_freq_local_.data()
                                                       : inv_freq_global_.data();
}

void Model::ForwardRows(const Batch& batch, size_t r0, size_t r1, Context& ctx,
                        float* logits_out) {
  KvTarget target;
  target.storage = ctx.kv_.get();
  target.slots = arena_.pos.data();
  target.runs.push_back({0, static_cast<int64_t>(r1 - r0), nullptr});
  for (size_t r = r0; r < r1; ++r) arena_.pos[r - r0] = batch.rows[r].pos;
  RunRows(batch, r0, r1, target, logits_out);
  ctx.n_past_ = arena_.pos[r1 - r0 - 1] + 1;
}

bool Model::ForwardRowsPaged(const Batch& batch, size_t r0, size_t r1, const PagedKv& kv,
                             float* logits_out) {
  KvTarget target;
  target.abort = kv.abort ? &kv.abort : nullptr;
  target.storage = kv.storage;
  target.slots = arena_.slots.data();
  target.block_tokens = kv.block_tokens;
  const int32_t bt = kv.block_tokens;
  for (size_t r = r0; r < r1; ++r) {
    const BatchRow& row = batch.rows[r];
    const std::vector<int32_t>& table = *kv.tables[row.seq_idx];
    arena_.slots[r - r0] = table[row.pos / bt] * bt + row.pos % bt;
    const int64_t t = static_cast<int64_t>(r - r0);
    if (target.runs.empty() || batch.rows[r - 1].seq_idx != row.seq_idx) {
      target.runs.push_back({t, t + 1, table.data()});
    } else {
      target.runs.back().end = t + 1;
    }
  }
  return RunRows(batch, r0, r1, target, logits_out);
}

bool Model::RunRows(const Batch& batch, size_t r0, size_t r1, const KvTarget& target,
                    float* logits_out) {
  const int64_t n = static_cast<int64_t>(r1 - r0);
  const int64_t e = config_.n_embd;
  for (int64_t t = 0; t < n; ++t) {
    arena_.ids[t] = batch.rows[r0 + t].token;
    arena_.pos[t] = batch.rows[r0 + t].pos;
  }
  ResolveOrders(batch, r0, target);
  backend::Backend& be = *backend_;
  be.EmbeddingRows(weights_->token_embd, arena_.ids.data(), n, arena_.x.data());
  if (config_.embedding_scale != 1.0f) be.Scale(arena_.x.data(), config_.embedding_scale, n * e);
  for (int il = 0; il < config_.n_layers; ++il) {
    if (target.abort != nullptr && (*target.abort)()) return false;
    Layer(il, n, target);
  }

  // Output head on the rows that want logits only, compacted into xn.
  int64_t m = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (!batch.rows[r0 + t].want_logits) continue;
    std::copy_n(arena_.x.data() + t * e, e, arena_.xn.data() + m * e);
    ++m;
  }
  if (m == 0) return true;
  be.RmsNorm(arena_.xn.data(), weights_->output_norm, config_.norm_weight_offset,
             config_.norm_eps, m, e, arena_.xn.data());
  be.MatMul(weights_->output, arena_.xn.data(), m, nullptr, logits_out);
  return true;
}

void Model::ResolveOrders(const Batch& batch, size_t r0, const KvTarget& target) {
  for (const KvTarget::Run& run : target.runs) {
    const backend::RowOrder one_call =
        run.end - run.begin >= 2 ? backend::RowOrder::kBatched : backend::RowOrder::kSingle;
    for (int64_t t = run.begin; t < run.end; ++t) {
      arena_.orders[t] = batch.rows[r0 + t].order.value_or(one_call);
    }
  }
}

void Model::Layer(int il, int64_t n, const KvTarget& target) {
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_->layers[il];
  backend::Backend& be = *backend_;
  Arena& a = arena_;
  const int64_t e = c.n_embd;
  const float off = c.norm_weight_offset;

  // Attention block.
  be.RmsNorm(a.x.data(), w.attn_norm, off, c.norm_eps, n, e, a.xn.data());
  const backend::MatMulOut qkv[] = {{&w.wq, w.bq, a.q.data()}, {&w.wk, w.bk, a.k.data()},
                                     {&w.wv, w.bv, a.v.data()}};
  be.MatMulShared(qkv, 3, a.xn.data(), n);
  if (c.qk_norm) {
    be.RmsNorm(a.q.data(), w.q_norm, off, c.norm_eps, n * c.n_heads, c.head_dim, a.q.data());
    be.RmsNorm(a.k.data(), w.k_norm, off, c.norm_eps, n * c.n_heads_kv, c.head_dim, a.k.data());
  }
  if (ggml_exact_) {
    const kernels::ggml::RopeParams& rp =
        c.local_rope && c.IsSliding(il) ? rope_ggml_local_ : rope_ggml_global_;
    be.RopeGgml(a.q.data(), n, c.n_heads, c.head_dim, a.pos.data(), rp, c.rope_style);
    be.RopeGgml(a.k.data(), n, c.n_heads_kv, c.head_dim, a.pos.data(), rp, c.rope_style);
  } else {
    be.Rope(a.q.data(), n, c.n_heads, c.head_dim, a.pos.data(), InvFreq(il), c.rope_style);
    be.Rope(a.k.data(), n, c.n_heads_kv, c.head_dim, a.pos.data(), InvFreq(il), c.rope_style);
  }
  target.storage->Store(il, target.slots, n, a.k.data(), a.v.data());
  backend::AttentionParams p;
  p.n_heads = c.n_heads;
  p.n_heads_kv = c.n_heads_kv;
  p.head_dim = c.head_dim;
  p.window = c.IsSliding(il) ? c.sliding_window : 0;
  p.scale = c.attention_scale;
  p.round_qp_to_kv_dtype = c.ggml_attention_rounding;
  backend::KvView view = target.storage->View(il);
  view.block_tokens = target.block_tokens;
  p.row_orders = a.orders.data();
  be.AttentionBatch(a.q.data(), a.pos.data(), target.runs.data(),
                    static_cast<int>(target.runs.size()), view, p, a.attn.data());
  be.MatMul(w.wo, a.attn.data(), n, nullptr, a.tmp.data());
  if (c.post_norms) be.RmsNorm(a.tmp.data(), w.post_attn_norm, off, c.norm_eps, n, e, a.tmp.data());
  be.Add(a.x.data(), a.tmp.data(), n * e);

  // Feed-forward block.
  be.RmsNorm(a.x.data(), w.ffn_norm, off, c.norm_eps, n, e, a.xn.data());
  const backend::MatMulOut gate_up[] = {{&w.w_gate, nullptr, a.gate.data()},
                                         {&w.w_up, nullptr, a.up.data()}};
  be.MatMulShared(gate_up, 2, a.xn.data(), n);
  be.GatedActivation(c.activation, a.gate.data(), a.up.data(), n * c.n_ff, a.gate.data());
  be.MatMul(w.w_down, a.gate.data(), n, nullptr, a.tmp.data());
  if (c.post_norms) be.RmsNorm(a.tmp.data(), w.post_ffn_norm, off, c.norm_eps, n, e, a.tmp.data());
  be.Add(a.x.data(), a.tmp.data(), n * e);
}

}  // namespace kiln::model
