// CPU backend: matmuls through the kernel table (quantize each activation row once, then one
// vec_dot per output element), the rest through the reference kernels, parallel over rows.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "base/check.h"
#include "kernels/norm.h"

namespace kiln::backend {
namespace {

// Output rows per ParallelFor grain: enough work per chunk to amortise the dispatch.
constexpr size_t kMatMulGrain = 16;

class CpuBackend final : public Backend {
 public:
  std::string KernelIsa() const override { return table_.isa; }
  CpuBackend(ThreadPool* pool, const kernels::KernelTable& table) : pool_(pool), table_(table) {}

  Status CheckWeightType(DType dtype) const override {
    const kernels::TypeKernels& k = table_.For(dtype);
    if (k.quantize_dot == nullptr || k.vec_dot == nullptr || k.dequantize == nullptr) {
      return Unimplemented("weight type %s has no %s kernels", DTypeName(dtype),
                           table_.isa.c_str());
    }
    return Status::Ok();
  }

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
    const kernels::TypeKernels& k = table_.For(w.dtype);
    KILN_CHECK(k.quantize_dot != nullptr && k.vec_dot != nullptr)
        << "no dot kernel for " << DTypeName(w.dtype);
    const std::optional<size_t> act_row_bytes = RowBytes(k.dot_type, w.cols);
    KILN_CHECK(act_row_bytes.has_value()) << "cols " << w.cols << " vs " << DTypeName(k.dot_type);
    const size_t need = *act_row_bytes * static_cast<size_t>(n_tokens);
    if (act_scratch_.size() < need) act_scratch_.resize(need);  // only if Reserve was too small
    uint8_t* act = act_scratch_.data();
    ParallelFor(pool_, 0, static_cast<size_t>(n_tokens), 1, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        k.quantize_dot(x + t * w.cols, act + t * *act_row_bytes, w.cols);
      }
    });
    if (k.gemm != nullptr && n_tokens > 1) {
      // Tiled kernel: bit-identical to vec_dot per (row, token) by the table's contract.
      ParallelFor(pool_, 0, static_cast<size_t>(w.rows), kMatMulGrain, [&](size_t r0, size_t r1) {
        k.gemm(w.data, w.row_bytes, act, *act_row_bytes, n_tokens, w.cols, out, w.rows,
               static_cast<int64_t>(r0), static_cast<int64_t>(r1));
        if (bias == nullptr) return;
        for (int64_t t = 0; t < n_tokens; ++t) {
          for (size_t r = r0; r < r1; ++r) out[t * w.rows + r] += bias[r];
        }
      });
      return;
    }
    ParallelFor(pool_, 0, static_cast<size_t>(w.rows), kMatMulGrain, [&](size_t r0, size_t r1) {
      for (int64_t t = 0; t < n_tokens; ++t) {
        const uint8_t* a = act + t * *act_row_bytes;
        float* o = out + t * w.rows;
        for (size_t r = r0; r < r1; ++r) {
          const float dot = k.vec_dot(w.Row(static_cast<int64_t>(r)), a, w.cols);
          o[r] = bias != nullptr ? dot + bias[r] : dot;
        }
      }
    });
  }

  void EmbeddingRows(const Matrix& table, const int32_t* ids, int64_t n, float* out) override {
    const kernels::TypeKernels& k = table_.For(table.dtype);
    KILN_CHECK(k.dequantize != nullptr) << "no dequantize for " << DTypeName(table.dtype);
    for (int64_t i = 0; i < n; ++i) {
      KILN_CHECK(ids[i] >= 0 && ids[i] < table.rows) << "token " << ids[i];
      k.dequantize(table.Row(ids[i]), out + i * table.cols, table.cols);
    }
  }

  void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n_rows,
               int64_t dim, float* out) override {
    ParallelFor(pool_, 0, static_cast<size_t>(n_rows), 4, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r) {
        kernels::ref::RmsNorm(x + r * dim, w, w_offset, eps, dim, out + r * dim);
      }
    });
  }

  void Rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const int32_t* positions,
            const float* inv_freq, RopeStyle style) override {
    const size_t stride = static_cast<size_t>(n_heads) * head_dim;
    ParallelFor(pool_, 0, static_cast<size_t>(n_tokens), 1, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        kernels::ref::Rope(x + t * stride, n_heads, head_dim, inv_freq, positions[t], style);
      }
    });
  }

  void Attention(const float* q, int64_t n_tokens, const int32_t* positions, const KvView& kv,
                 const AttentionParams& p, float* out) override {
    KILN_CHECK(p.n_heads_kv > 0 && p.n_heads % p.n_heads_kv == 0) << p.n_heads << "/" << p.n_heads_kv;
    const int group = p.n_heads / p.n_heads_kv;
    const size_t n_items = static_cast<size_t>(n_tokens) * p.n_heads;
    ParallelFor(pool_, 0, n_items, 1, [&](size_t i0, size_t i1) {
      // One scratch per chunk (one chunk per thread); sized once per thread and reused.
      thread_local std::vector<float> scores;
      for (size_t i = i0; i < i1; ++i) {
        const size_t t = i / p.n_heads;
        const int h = static_cast<int>(i % p.n_heads);
        const int32_t pos = positions[t];
        const int32_t begin = p.window > 0 ? std::max<int32_t>(0, pos - p.window + 1) : 0;
        const size_t n_pos = static_cast<size_t>(pos + 1 - begin);
        if (scores.size() < n_pos) scores.resize(std::max<size_t>(n_pos, max_positions_));
        const size_t off = i * p.head_dim;
        kernels::ref::AttentionHead(q + off, kv, h / group, begin, pos + 1, p.scale,
                                    scores.data(), out + off, p.round_qp_to_kv_dtype);
      }
    });
  }

  void GatedActivation(Activation act, const float* gate, const float* up, int64_t n,
                       float* out) override {
    ParallelFor(pool_, 0, static_cast<size_t>(n), 4096, [&](size_t b, size_t e) {
      kernels::ref::GatedActivation(act, gate + b, up + b, static_cast<int64_t>(e - b), out + b);
    });
  }

  void Add(float* x, const float* y, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  }

  void Scale(float* x, float s, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
  }

 private:
  ThreadPool* pool_;
  const kernels::KernelTable& table_;
  std::vector<uint8_t> act_scratch_;  // quantized activation rows for MatMul
  int32_t max_positions_ = 0;
};

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
