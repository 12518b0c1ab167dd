// Kernel micro-benchmarks: matrix × vector (decode; GB/s of weights read; the table's gemm
// with one token, as the CPU backend calls it, or vec_dot per row for ref),
// gemm (prompt; GFLOP/s) per kernel table × weight type × model shape, and a STREAM-like
// read bandwidth (1 and 2 threads) to express the matvec figures as a share of the roofline.
//   kernels_bench --benchmark_filter='matvec/avx512/q4_0' --benchmark_repetitions=5
// Shapes are (rows = output features) × (k = input features) of SmolLM2-135M, Qwen2.5-0.5B
// and Llama-3.2-1B.
// One-thread rates use CPU time (the machine is shared; wall time counts other jobs' slices);
// two-thread rates need wall time and are only meaningful on a quiet machine.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/aligned.h"
#include "base/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/pack.h"
#include "kernels/quant.h"
#include "tensor/dtype.h"

namespace kiln::kernels {
namespace {

struct Shape {
  const char* name;
  int64_t rows, k;
};

constexpr Shape kShapes[] = {
    {"smol_attn_576x576", 576, 576},      {"smol_ffn_up_1536x576", 1536, 576},
    {"smol_ffn_down_576x1536", 576, 1536}, {"smol_lm_head_49152x576", 49152, 576},
    {"qwen_attn_896x896", 896, 896},       {"qwen_ffn_up_4864x896", 4864, 896},
    {"qwen_ffn_down_896x4864", 896, 4864}, {"qwen_lm_head_151936x896", 151936, 896},
    // Llama-3.2-1B: k a multiple of 256, so the K types (its Q4_K_M file's q4_K/q6_K) run.
    {"llama_attn_2048x2048", 2048, 2048},   {"llama_ffn_down_2048x8192", 2048, 8192},
    {"llama_lm_head_128256x2048", 128256, 2048},
};

constexpr DType kTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                            DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                            DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                            // Packed layouts (kernels/pack.h), packed in the setup.
                            DType::kQ4_0_R16, DType::kQ8_0_R16, DType::kQ5_0_R16,
                            DType::kQ4_K_R16, DType::kQ6_K_R16};

// A weight matrix of `type`, filled by quantizing random floats one row at a time.
struct Matrix {
  AlignedBuffer data;
  size_t row_bytes;
};

Matrix MakeMatrix(const KernelTable& table, DType type, int64_t rows, int64_t k) {
  if (IsPacked(type)) {  // the original type's matrix, packed (rows % 16 == 0 in kShapes)
    const DType orig = UnpackedTypeOf(type);
    const Matrix src = MakeMatrix(table, orig, rows, k);
    Matrix m{AlignedBuffer(src.row_bytes * rows), src.row_bytes};
    PackRows(orig, src.data.data(), src.row_bytes, rows, k, m.data.data());
    return m;
  }
  Matrix m{AlignedBuffer(*RowBytes(type, k) * rows), *RowBytes(type, k)};
  std::mt19937 rng(42);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(k));
  // Quantizing every row of a 150k-row matrix with the (slow) K quantizers takes long: fill
  // 64 distinct rows and repeat them; the kernels' speed does not depend on the values.
  constexpr int64_t kDistinct = 64;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = m.data.as<uint8_t>() + r * m.row_bytes;
    if (r >= kDistinct) {
      std::memcpy(dst, m.data.as<uint8_t>() + (r % kDistinct) * m.row_bytes, m.row_bytes);
      continue;
    }
    for (float& v : row) v = gauss(rng);
    ref::QuantizeRow(type, row.data(), dst, k);
  }
  return m;
}

AlignedBuffer MakeActivations(const TypeKernels& kernels, int64_t n_tokens, int64_t k,
                              size_t* row_bytes) {
  *row_bytes = *RowBytes(kernels.dot_type, k);
  AlignedBuffer a(*row_bytes * n_tokens);
  std::mt19937 rng(7);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(k));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (float& v : x) v = gauss(rng);
    kernels.quantize_dot(x.data(), a.as<uint8_t>() + t * *row_bytes, k);
  }
  return a;
}

void BM_MatVec(benchmark::State& state, const KernelTable* table, DType type, Shape shape,
               int n_threads) {
  const TypeKernels& kn = table->For(type);
  const Matrix w = MakeMatrix(*table, type, shape.rows, shape.k);
  size_t a_row_bytes;
  const AlignedBuffer a = MakeActivations(kn, 1, shape.k, &a_row_bytes);
  std::vector<float> out(static_cast<size_t>(shape.rows));
  ThreadPool pool(n_threads);
  for (auto _ : state) {
    ParallelFor(&pool, 0, static_cast<size_t>(shape.rows), 64, [&](size_t r0, size_t r1) {
      if (kn.gemm != nullptr) {  // one token: the table's multi-row matrix × vector tiles
        kn.gemm(w.data.data(), w.row_bytes, a.data(), a_row_bytes, 1, shape.k, out.data(),
                shape.rows, static_cast<int64_t>(r0), static_cast<int64_t>(r1));
        return;
      }
      for (size_t r = r0; r < r1; ++r) {
        out[r] = kn.vec_dot(w.data.as<uint8_t>() + r * w.row_bytes, a.data(), shape.k);
      }
    });
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.row_bytes * shape.rows));
}

// gemm over n_tokens activations (looped vec_dot for tables without gemm, i.e. ref).
void BM_Gemm(benchmark::State& state, const KernelTable* table, DType type, Shape shape,
             int64_t n_tokens) {
  const TypeKernels& kn = table->For(type);
  const Matrix w = MakeMatrix(*table, type, shape.rows, shape.k);
  size_t a_row_bytes;
  const AlignedBuffer a = MakeActivations(kn, n_tokens, shape.k, &a_row_bytes);
  std::vector<float> out(static_cast<size_t>(shape.rows * n_tokens));
  for (auto _ : state) {
    if (kn.gemm != nullptr) {
      kn.gemm(w.data.data(), w.row_bytes, a.data(), a_row_bytes, n_tokens, shape.k, out.data(),
              shape.rows, 0, shape.rows);
    } else {
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t r = 0; r < shape.rows; ++r) {
          out[t * shape.rows + r] = kn.vec_dot(w.data.as<uint8_t>() + r * w.row_bytes,
                                               a.as<uint8_t>() + t * a_row_bytes, shape.k);
        }
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(shape.rows * shape.k * n_tokens) * state.iterations(),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void BM_Quantize(benchmark::State& state, const KernelTable* table, DType type, int64_t k) {
  const TypeKernels& kn = table->For(type);
  std::vector<float> x(static_cast<size_t>(k), 0.25f);
  for (int64_t i = 0; i < k; ++i) x[i] = static_cast<float>((i * 37) % 101) - 50.0f;
  AlignedBuffer y(*RowBytes(kn.dot_type, k));
  for (auto _ : state) {
    kn.quantize_dot(x.data(), y.data(), k);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * k * static_cast<int64_t>(sizeof(float)));
}

// STREAM-like read bandwidth: each thread sums its share of a 512 MiB buffer (8 independent
// 64-bit accumulators), the roof the matvec of an out-of-cache matrix can reach.
void BM_ReadBandwidth(benchmark::State& state, int n_threads) {
  constexpr size_t kBytes = size_t{512} << 20;
  static AlignedBuffer* buffer = [] {
    auto* b = new AlignedBuffer(kBytes);
    std::memset(b->data(), 1, kBytes);
    return b;
  }();
  const uint64_t* p = buffer->as<uint64_t>();
  const size_t n = kBytes / sizeof(uint64_t);
  ThreadPool pool(n_threads);
  std::vector<uint64_t> sums(static_cast<size_t>(n_threads));
  for (auto _ : state) {
    pool.Run([&](int idx) {
      const size_t begin = n * idx / n_threads, end = n * (idx + 1) / n_threads;
      uint64_t s[8] = {};
      for (size_t i = begin; i + 8 <= end; i += 8) {
        for (int j = 0; j < 8; ++j) s[j] += p[i + j];
      }
      sums[idx] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBytes));
}

void Register() {
  for (int threads : {1, 2}) {
    auto* b = benchmark::RegisterBenchmark(
        ("read_bandwidth/threads:" + std::to_string(threads)).c_str(), BM_ReadBandwidth, threads);
    b->Unit(benchmark::kMillisecond);
    if (threads > 1) b->UseRealTime();
  }
  for (const KernelTable* table : AvailableKernelTables()) {
    for (DType type : kTypes) {
      // Packed layouts only where the table has its own gemm (dispatch leaves them empty).
      if (IsPacked(type) && table->For(type).gemm == nullptr) continue;
      const std::string prefix = table->isa + "/" + DTypeName(type) + "/";
      for (const Shape& shape : kShapes) {
        // An f32 Qwen head is 545 MB: skip the plain types on the two biggest shapes.
        if (!Info(type).quantized && shape.rows * shape.k > 50'000'000) continue;
        // K types need k % 256 == 0 (576 and 896 are not: such models use other types there).
        if (!RowBytes(type, shape.k).has_value()) continue;
        for (int threads : {1, 2}) {
          auto* b = benchmark::RegisterBenchmark(
              ("matvec/" + prefix + shape.name + "/threads:" + std::to_string(threads)).c_str(),
              BM_MatVec, table, type, shape, threads);
          b->Unit(benchmark::kMicrosecond);
          if (threads > 1) b->UseRealTime();
        }
        if (shape.rows * shape.k <= 5'000'000) {
          benchmark::RegisterBenchmark(("gemm/" + prefix + shape.name + "/tokens:64").c_str(),
                                       BM_Gemm, table, type, shape, int64_t{64})
              ->Unit(benchmark::kMillisecond);
        }
      }
      if (IsPacked(type)) continue;  // the same quantizer as the original type
      benchmark::RegisterBenchmark(("quantize/" + prefix + "k:4864").c_str(), BM_Quantize,
                                   table, type, int64_t{4864});
    }
  }
}

}  // namespace
}  // namespace kiln::kernels

int main(int argc, char** argv) {
  kiln::kernels::Register();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
