#include "kv/kv_cache.h"

#include <cstring>
#include <limits>

#include "base/check.h"
#include "tensor/fp16.h"

namespace kiln::kv {

StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheOptions& opts) {
  if (opts.n_layers <= 0 || opts.n_ctx <= 0 || opts.n_heads_kv <= 0 || opts.head_dim <= 0) {
    return InvalidArgument("KV cache sizes must be positive (layers %d, n_ctx %d, kv heads %d, "
                           "head_dim %d)", opts.n_layers, opts.n_ctx, opts.n_heads_kv,
                           opts.head_dim);
  }
  if (opts.dtype != DType::kF32 && opts.dtype != DType::kF16) {
    return InvalidArgument("KV cache dtype must be f32 or f16, got %s", DTypeName(opts.dtype));
  }
  const double bytes = 2.0 * opts.n_layers * opts.n_ctx * opts.n_heads_kv * opts.head_dim *
                       (opts.dtype == DType::kF16 ? 2 : 4);
  if (bytes > static_cast<double>(std::numeric_limits<size_t>::max() / 4)) {
    return ResourceExhausted("KV cache of %.0f bytes is too large", bytes);
  }
  std::unique_ptr<KvCache> cache(new KvCache(opts));
  if (cache->k_.data() == nullptr || cache->v_.data() == nullptr) {
    return ResourceExhausted("cannot allocate a %.1f MiB KV cache", bytes / (1 << 20));
  }
  return cache;
}

KvCache::KvCache(const KvCacheOptions& opts) : opts_(opts) {
  const size_t elem = opts.dtype == DType::kF16 ? 2 : 4;
  row_bytes_ = static_cast<size_t>(opts.head_dim) * elem;
  head_bytes_ = row_bytes_ * static_cast<size_t>(opts.n_ctx);
  layer_bytes_ = head_bytes_ * static_cast<size_t>(opts.n_heads_kv);
  k_ = AlignedBuffer(layer_bytes_ * opts.n_layers);
  v_ = AlignedBuffer(layer_bytes_ * opts.n_layers);
}

void KvCache::Store(int layer, const int32_t* positions, int64_t n_tokens, const float* k,
                    const float* v) {
  KILN_CHECK(layer >= 0 && layer < opts_.n_layers) << "layer " << layer;
  const int64_t row = static_cast<int64_t>(opts_.n_heads_kv) * opts_.head_dim;
  uint8_t* k_base = k_.as<uint8_t>() + layer * layer_bytes_;
  uint8_t* v_base = v_.as<uint8_t>() + layer * layer_bytes_;
  const int64_t hd = opts_.head_dim;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int32_t pos = positions[t];
    KILN_CHECK(pos >= 0 && pos < opts_.n_ctx) << "position " << pos << " n_ctx " << opts_.n_ctx;
    for (int h = 0; h < opts_.n_heads_kv; ++h) {
      const size_t at = h * head_bytes_ + pos * row_bytes_;
      const float* ks = k + t * row + h * hd;
      const float* vs = v + t * row + h * hd;
      if (opts_.dtype == DType::kF32) {
        std::memcpy(k_base + at, ks, hd * sizeof(float));
        std::memcpy(v_base + at, vs, hd * sizeof(float));
      } else {
        uint16_t* kh = reinterpret_cast<uint16_t*>(k_base + at);
        uint16_t* vh = reinterpret_cast<uint16_t*>(v_base + at);
        for (int64_t i = 0; i < hd; ++i) {
          kh[i] = Fp32ToFp16(ks[i]);
          vh[i] = Fp32ToFp16(vs[i]);
        }
      }
    }
  }
}

backend::KvView KvCache::View(int layer) const {
  KILN_CHECK(layer >= 0 && layer < opts_.n_layers) << "layer " << layer;
  backend::KvView view;
  view.dtype = opts_.dtype;
  view.k = k_.as<uint8_t>() + layer * layer_bytes_;
  view.v = v_.as<uint8_t>() + layer * layer_bytes_;
  view.pos_stride = row_bytes_;
  view.head_stride = head_bytes_;
  view.head_dim = opts_.head_dim;
  return view;
}

void KvCache::CopySlots(int32_t src, int32_t dst, int32_t n) {
  KILN_CHECK(src >= 0 && dst >= 0 && n >= 0 && src + n <= opts_.n_ctx && dst + n <= opts_.n_ctx &&
             (src + n <= dst || dst + n <= src))
      << "copy " << src << "->" << dst << " x" << n << " of " << opts_.n_ctx;
  for (int l = 0; l < opts_.n_layers; ++l) {
    for (AlignedBuffer* b : {&k_, &v_}) {
      for (int h = 0; h < opts_.n_heads_kv; ++h) {
        uint8_t* base = b->as<uint8_t>() + l * layer_bytes_ + h * head_bytes_;
        std::memcpy(base + dst * row_bytes_, base + src * row_bytes_, n * row_bytes_);
      }
    }
  }
}

}  // namespace kiln::kv
