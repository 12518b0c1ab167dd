// CPU backend ops against naive double-precision computations, and batch invariance.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "kernels/kernel_table.h"
#include "kernels/pack.h"
#include "kernels/quant.h"
#include "tensor/fp16.h"

namespace kiln::backend {
namespace {

std::vector<float> RandomVec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A plain f32 table so these tests do not depend on which quant kernels are filled in.
void QuantizeF32(const float* x, void* y, int64_t n) { std::memcpy(y, x, n * 4); }
void DequantizeF32(const void* x, float* y, int64_t n) { std::memcpy(y, x, n * 4); }
float DotF32(const void* w, const void* a, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<const float*>(w)[i] * static_cast<const float*>(a)[i];
  return s;
}
const kernels::KernelTable& F32Table() {
  static const kernels::KernelTable t = [] {
    kernels::KernelTable t;
    t.isa = "test-f32";
    t.For(DType::kF32) = {DType::kF32, QuantizeF32, DotF32, DequantizeF32};
    return t;
  }();
  return t;
}

Matrix F32Matrix(const std::vector<float>& w, int64_t rows, int64_t cols) {
  return Matrix{DType::kF32, rows, cols, reinterpret_cast<const uint8_t*>(w.data()),
                static_cast<size_t>(cols) * 4};
}

TEST(CpuBackendTest, MatMulF32MatchesNaiveAndIsBatchInvariant) {
  const int64_t rows = 37, cols = 20, n_tok = 5;
  auto w = RandomVec(rows * cols, 1), x = RandomVec(n_tok * cols, 2), bias = RandomVec(rows, 3);
  ThreadPool pool(2);
  auto be = MakeCpuBackend(&pool, F32Table());
  ASSERT_TRUE(be->CheckWeightType(DType::kF32).ok());
  EXPECT_EQ(be->CheckWeightType(DType::kQ4_0).code(), StatusCode::kUnimplemented);
  std::vector<float> out(n_tok * rows);
  be->MatMul(F32Matrix(w, rows, cols), x.data(), n_tok, bias.data(), out.data());
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double want = bias[r];
      for (int64_t c = 0; c < cols; ++c) want += double(w[r * cols + c]) * x[t * cols + c];
      EXPECT_NEAR(out[t * rows + r], want, 1e-4);
    }
  }
  // The same row alone, on an inline (pool-less) backend: bit-identical.
  auto be1 = MakeCpuBackend(nullptr, F32Table());
  std::vector<float> one(rows);
  be1->MatMul(F32Matrix(w, rows, cols), x.data() + 3 * cols, 1, bias.data(), one.data());
  EXPECT_EQ(0, std::memcmp(one.data(), out.data() + 3 * rows, rows * 4));
}

// Every weight type the active table supports: MatMul ≈ dequantized weight · x.
TEST(CpuBackendTest, MatMulQuantTypesMatchDequantizedWeights) {
  const int64_t rows = 40, cols = 2048;
  auto wf = RandomVec(rows * cols, 4), x = RandomVec(2 * cols, 5);
  int n_tested = 0;
  for (const kernels::KernelTable* table_ptr : kernels::AvailableKernelTables()) {
  const kernels::KernelTable& table = *table_ptr;
  SCOPED_TRACE(table.isa);
  auto be = MakeCpuBackend(nullptr, table);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                  DType::kQ5_0, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    if (!be->CheckWeightType(t).ok()) continue;
    ++n_tested;
    size_t rb = *RowBytes(t, cols);
    std::vector<uint8_t> wq(rows * rb);
    for (int64_t r = 0; r < rows; ++r) kernels::ref::QuantizeRow(t, &wf[r * cols], &wq[r * rb], cols);
    std::vector<float> wd(rows * cols), wd_ref(rows * cols);
    for (int64_t r = 0; r < rows; ++r) table.For(t).dequantize(&wq[r * rb], &wd[r * cols], cols);
    for (int64_t r = 0; r < rows; ++r) kernels::ref::DequantizeRow(t, &wq[r * rb], &wd_ref[r * cols], cols);
    EXPECT_EQ(wd, wd_ref) << DTypeName(t) << " dequantize differs from ref";
    std::vector<float> out(2 * rows);
    be->MatMul(Matrix{t, rows, cols, wq.data(), rb}, x.data(), 2, nullptr, out.data());
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t r = 0; r < rows; ++r) {
        double want = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          want += double(wd[r * cols + c]) * x[i * cols + c];
          mag += std::abs(double(wd[r * cols + c]) * x[i * cols + c]);
        }
        // Activations are quantized to the dot type (8-bit for quant types): ~1% of |w||x|.
        EXPECT_NEAR(out[i * rows + r], want, 1e-2 * mag + 1e-4) << DTypeName(t);
      }
    }
  }
  }
  if (n_tested == 0) GTEST_SKIP() << "active kernel table has no weight types yet";
}

TEST(CpuBackendTest, AttentionAppliesCausalityWindowAndGqa) {
  const int n_heads = 4, n_kv = 2, d = 8, n_pos = 10;
  auto k = RandomVec(n_pos * n_kv * d, 6), v = RandomVec(n_pos * n_kv * d, 7);
  KvView kv{DType::kF32, reinterpret_cast<const uint8_t*>(k.data()),
            reinterpret_cast<const uint8_t*>(v.data()), size_t(n_kv) * d * 4, d};
  std::vector<int32_t> positions = {0, 4, 9};
  auto q = RandomVec(positions.size() * n_heads * d, 8);
  ThreadPool pool(2);
  auto be = MakeCpuBackend(&pool, F32Table());
  for (int32_t window : {0, 3}) {
    AttentionParams p{n_heads, n_kv, d, window, 0.3f};
    std::vector<float> out(q.size());
    be->Attention(q.data(), positions.size(), positions.data(), kv, p, out.data());
    for (size_t t = 0; t < positions.size(); ++t) {
      for (int h = 0; h < n_heads; ++h) {
        const int kh = h / (n_heads / n_kv);
        std::vector<double> w(n_pos, 0.0);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < n_pos; ++j) {
          bool visible = j <= positions[t] && (window == 0 || positions[t] - j < window);
          if (!visible) continue;
          double s = 0;
          for (int i = 0; i < d; ++i) s += double(q[(t * n_heads + h) * d + i]) * k[(j * n_kv + kh) * d + i];
          w[j] = s * 0.3;
          mx = std::max(mx, w[j]);
        }
        for (int j = 0; j < n_pos; ++j) {
          bool visible = j <= positions[t] && (window == 0 || positions[t] - j < window);
          w[j] = visible ? std::exp(w[j] - mx) : 0.0;
          sum += w[j];
        }
        for (int i = 0; i < d; ++i) {
          double want = 0;
          for (int j = 0; j < n_pos; ++j) want += w[j] / sum * v[(j * n_kv + kh) * d + i];
          EXPECT_NEAR(out[(t * n_heads + h) * d + i], want, 1e-5) << window << " " << t << " " << h;
        }
      }
    }
  }
}

// A ragged batch of three paged sequences in one AttentionBatch call equals each sequence's
// Attention alone, bit for bit, for the general kernels and llama.cpp's (f16 KV, exact on).
TEST(CpuBackendTest, AttentionBatchEqualsEachSequenceAlone) {
  const int n_heads = 6, n_kv = 2, d = 64, block = 4, n_slots = 64;
  std::vector<uint16_t> k(n_slots * n_kv * d), v(n_slots * n_kv * d);
  const auto kf = RandomVec(k.size(), 11), vf = RandomVec(v.size(), 12);
  for (size_t i = 0; i < k.size(); ++i) k[i] = Fp32ToFp16(kf[i]), v[i] = Fp32ToFp16(vf[i]);
  KvView kv{DType::kF16, reinterpret_cast<const uint8_t*>(k.data()),
            reinterpret_cast<const uint8_t*>(v.data()), size_t(n_kv) * d * 2, d};
  kv.block_tokens = block;
  // Sequence 0: a 5-token prefill chunk at positions 6..10; 1 and 2: one decode token each.
  const std::vector<int32_t> tables[] = {{3, 9, 1}, {0, 5, 7, 2, 8}, {15, 4}};
  const std::vector<int32_t> positions = {6, 7, 8, 9, 10, 17, 5};
  const AttentionSeq seqs[] = {{0, 5, tables[0].data()}, {5, 6, tables[1].data()},
                               {6, 7, tables[2].data()}};
  const std::vector<RowOrder> orders = {RowOrder::kBatched, RowOrder::kBatched, RowOrder::kBatched,
                                        RowOrder::kBatched, RowOrder::kSingle, RowOrder::kSingle,
                                        RowOrder::kSingle};
  const auto q = RandomVec(positions.size() * n_heads * d, 13);
  const size_t q_row = size_t(n_heads) * d;
  for (bool exact : {false, true}) {
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      auto be = MakeCpuBackend(&pool, kernels::ActiveKernelTable());
      be->SetGgmlExact(exact);
      AttentionParams p{n_heads, n_kv, d, 0, 0.125f, /*round_qp_to_kv_dtype=*/true, orders.data()};
      std::vector<float> batch(q.size(), -1.0f), alone(q.size(), -2.0f);
      be->AttentionBatch(q.data(), positions.data(), seqs, 3, kv, p, batch.data());
      for (const AttentionSeq& s : seqs) {
        KvView view = kv;
        view.block_ids = s.block_ids;
        AttentionParams ps = p;
        ps.row_orders = orders.data() + s.begin;
        be->Attention(q.data() + s.begin * q_row, s.end - s.begin, positions.data() + s.begin,
                      view, ps, alone.data() + s.begin * q_row);
      }
      for (size_t i = 0; i < q.size(); ++i) {
        uint32_t a, b;
        std::memcpy(&a, &batch[i], 4);
        std::memcpy(&b, &alone[i], 4);
        ASSERT_EQ(a, b) << "exact=" << exact << " threads=" << threads << " i=" << i;
      }
    }
  }
}

TEST(CpuBackendTest, RmsNormRowsAndEmbedding) {
  const int64_t dim = 6;
  auto x = RandomVec(3 * dim, 9), w = RandomVec(dim, 10);
  auto be = MakeCpuBackend(nullptr, F32Table());
  std::vector<float> out(3 * dim);
  be->RmsNorm(x.data(), w.data(), 1.0f, 1e-6f, 3, dim, out.data());
  for (int r = 0; r < 3; ++r) {
    double ms = 0;
    for (int i = 0; i < dim; ++i) ms += double(x[r * dim + i]) * x[r * dim + i] / dim;
    for (int i = 0; i < dim; ++i)
      EXPECT_NEAR(out[r * dim + i], x[r * dim + i] / std::sqrt(ms + 1e-6) * (1 + w[i]), 1e-5);
  }
  std::vector<int32_t> ids = {2, 0};
  std::vector<float> emb(2 * dim);
  be->EmbeddingRows(F32Matrix(x, 3, dim), ids.data(), 2, emb.data());
  EXPECT_EQ(0, std::memcmp(emb.data(), &x[2 * dim], dim * 4));
  EXPECT_EQ(0, std::memcmp(emb.data() + dim, &x[0], dim * 4));
}

// Matrices of the types with a packed layout, packed at load (kernels/pack.h) where the table has a packed gemm:
// products follow the packed order bit for bit (also shared with an unpackable matrix, on two
// threads), embedding rows come back as the file's rows, and a matrix whose rows do not fill
// groups of 16 keeps its layout.
TEST(CpuBackendTest, PackedWeightsMultiplyInPackedOrderAndEmbedTheFileRows) {
  const int64_t cols = 512, rows = 48, odd_rows = 40, n_tok = 5;
  auto wf = RandomVec(rows * cols, 50), x = RandomVec(n_tok * cols, 51);
  ThreadPool pool(2);
  int n_packed = 0;
  for (const kernels::KernelTable* table_ptr : kernels::AvailableKernelTables()) {
    const kernels::KernelTable& table = *table_ptr;
    for (DType t : {DType::kQ4_0, DType::kQ5_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
      SCOPED_TRACE(table.isa + " " + DTypeName(t));
      auto be = MakeCpuBackend(&pool, table);
      const size_t rb = *RowBytes(t, cols);
      std::vector<uint8_t> wq(rows * rb);
      for (int64_t r = 0; r < rows; ++r) kernels::ref::QuantizeRow(t, &wf[r * cols], &wq[r * rb], cols);
      const std::vector<uint8_t> original = wq;
      Matrix m{t, rows, cols, wq.data(), rb};
      Matrix odd{t, odd_rows, cols, wq.data(), rb};
      be->PrepareMatMulWeight(&m);
      be->PrepareMatMulWeight(&odd);
      EXPECT_EQ(odd.dtype, t);
      EXPECT_EQ(wq, original) << "packing wrote into the source";
      const kernels::TypeKernels& pk = table.For(*kernels::PackedTypeOf(t));
      if (pk.gemm == nullptr) {
        EXPECT_EQ(m.dtype, t);
        EXPECT_EQ(be->PackedMatrices(), 0);
        continue;
      }
      ++n_packed;
      ASSERT_EQ(m.dtype, *kernels::PackedTypeOf(t));
      EXPECT_EQ(be->PackedMatrices(), 1);
      std::vector<float> out(n_tok * rows), out_odd(n_tok * odd_rows), sep_odd(n_tok * odd_rows);
      MatMulOut outs[2] = {{&m, nullptr, out.data()}, {&odd, nullptr, out_odd.data()}};
      be->MatMulShared(outs, 2, x.data(), n_tok);
      be->MatMul(odd, x.data(), n_tok, nullptr, sep_odd.data());
      EXPECT_EQ(0, std::memcmp(out_odd.data(), sep_odd.data(), out_odd.size() * 4));
      const size_t ab = *RowBytes(pk.dot_type, cols);
      std::vector<uint8_t> act(ab);
      for (int64_t i = 0; i < n_tok; ++i) {
        pk.quantize_dot(&x[i * cols], act.data(), cols);
        for (int64_t r = 0; r < rows; ++r) {
          const float want = kernels::ref::VecDotPackedOrder(m.dtype, &original[r * rb], act.data(), cols);
          ASSERT_EQ(0, std::memcmp(&want, &out[i * rows + r], 4)) << "token " << i << " row " << r;
        }
      }
      const int32_t ids[] = {0, 17, 47, 16};
      std::vector<float> emb(4 * cols), want(cols);
      be->EmbeddingRows(m, ids, 4, emb.data());
      for (int i = 0; i < 4; ++i) {
        kernels::ref::DequantizeRow(t, &original[ids[i] * rb], want.data(), cols);
        EXPECT_EQ(0, std::memcmp(want.data(), &emb[i * cols], cols * 4)) << "id " << ids[i];
      }
    }
  }
  EXPECT_GE(n_packed, 5) << "the ref table packs Q4_0, Q5_0, Q8_0, Q4_K and Q6_K";
}

}  // namespace
}  // namespace kiln::backend

namespace kiln::backend {
namespace {

// Q/K/V-style products over one input in one call equal separate MatMul calls bit for bit,
// whatever the split of the rows between threads.
TEST(CpuBackendTest, MatMulSharedEqualsSeparateMatMuls) {
  const int64_t cols = 40;
  const int64_t rows[] = {37, 5, 19};
  std::vector<std::vector<float>> ws;
  for (int i = 0; i < 3; ++i) ws.push_back(RandomVec(rows[i] * cols, 20 + i));
  auto bias = RandomVec(rows[0], 30);
  ThreadPool pool(2);
  auto be = MakeCpuBackend(&pool, F32Table());
  for (int64_t n_tok : {1, 3, 9}) {
    auto x = RandomVec(n_tok * cols, 40 + n_tok);
    std::vector<Matrix> m;
    for (int i = 0; i < 3; ++i) m.push_back(F32Matrix(ws[i], rows[i], cols));
    std::vector<std::vector<float>> sep(3), shared(3);
    MatMulOut outs[3];
    for (int i = 0; i < 3; ++i) {
      sep[i].assign(n_tok * rows[i], 0.0f);
      shared[i].assign(n_tok * rows[i], -1.0f);
      be->MatMul(m[i], x.data(), n_tok, i == 0 ? bias.data() : nullptr, sep[i].data());
      outs[i] = {&m[i], i == 0 ? bias.data() : nullptr, shared[i].data()};
    }
    be->MatMulShared(outs, 3, x.data(), n_tok);
    for (int i = 0; i < 3; ++i) {
      for (size_t j = 0; j < sep[i].size(); ++j) {
        ASSERT_EQ(std::memcmp(&sep[i][j], &shared[i][j], 4), 0) << "matrix " << i << " n_tok " << n_tok;
      }
    }
  }
}

}  // namespace
}  // namespace kiln::backend
