// Our reference quant kernels against ggml itself: libggml-base.so (its quantize_row_*_ref,
// dequantize_row_* and f16/bf16 conversions) and libggml-cpu-x64.so (the baseline-x86 CPU
// backend, whose vec_dot functions are ggml's generic scalar code), both shipped prebuilt
// in the npm package @node-llama-cpp/linux-x64 that scripts/install_deps.sh installs.
//
// Library lookup: $KILN_GGML_BASE_LIB, else $KILN_DEPS/node/node_modules/…, ./.deps/…, and
// /work/main/.deps/… (bins/*/libggml-base.so). Not found: the tests skip, or fail when
// KILN_REQUIRE_ORACLES=1. KILN_QUANT_VERBOSE=1 prints the per-type comparison counts.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/quant.h"
#include "kernels/ref/ggml_oracle_lib.h"
#include "tensor/dtype.h"
#include "tensor/fp16.h"

namespace kiln::kernels {
namespace {

using GgmlQuantizeFn = void (*)(const float*, void*, int64_t);
using GgmlDequantizeFn = void (*)(const void*, float*, int64_t);
using GgmlVecDotFn = void (*)(int n, float* s, size_t bs, const void* x, size_t bx,
                              const void* y, size_t by, int nrc);

// ggml-cpu.h's struct ggml_type_traits_cpu.
struct GgmlTypeTraitsCpu {
  void (*from_float)(const float*, void*, int64_t);
  GgmlVecDotFn vec_dot;
  int vec_dot_type;  // enum ggml_type
  int64_t nrows;
};

struct GgmlLib {
  std::string base_path;
  std::map<DType, GgmlQuantizeFn> quantize;
  std::map<DType, GgmlDequantizeFn> dequantize;
  float (*fp16_to_fp32)(uint16_t) = nullptr;
  uint16_t (*fp32_to_fp16)(float) = nullptr;
  float (*bf16_to_fp32)(uint16_t) = nullptr;   // takes ggml_bf16_t {uint16_t}: same ABI
  uint16_t (*fp32_to_bf16)(float) = nullptr;   // returns ggml_bf16_t
  void (*fp32_to_fp16_row)(const float*, uint16_t*, int64_t) = nullptr;
  void (*fp32_to_bf16_row_ref)(const float*, uint16_t*, int64_t) = nullptr;
  using TraitsFn = const GgmlTypeTraitsCpu* (*)(int);
  TraitsFn cpu_traits = nullptr;       // libggml-cpu-x64 (generic code); null if missing
  std::string simd_name;               // best SIMD variant this CPU runs, e.g. "zen4"
  TraitsFn simd_cpu_traits = nullptr;  // its traits; null if none usable
};

template <typename Fn>
Fn Sym(void* lib, const std::string& name) {
  return reinterpret_cast<Fn>(dlsym(lib, name.c_str()));
}

// Loads one CPU backend variant next to libggml-base.so and initializes it.
GgmlLib::TraitsFn LoadCpuVariant(const std::string& dir, const std::string& variant) {
  void* cpu = dlopen((dir + "/libggml-cpu-" + variant + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
  if (cpu == nullptr) return nullptr;
  auto init = Sym<void (*)()>(cpu, "ggml_cpu_init");
  auto traits = Sym<GgmlLib::TraitsFn>(cpu, "ggml_get_type_traits_cpu");
  if (init == nullptr || traits == nullptr) return nullptr;
  init();  // fills ggml-cpu's fp16 lookup table
  return traits;
}

// The most capable ggml CPU variant whose instructions this CPU has.
std::string BestSimdVariant() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bf16") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    return "zen4";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return "haswell";
  }
  return "";
}

using test::Env;
const auto FindBaseLib = test::FindGgmlBaseLib;

const DType kQuantTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                             DType::kQ8_0, DType::kQ8_1, DType::kQ4_K, DType::kQ5_K,
                             DType::kQ6_K, DType::kQ8_K};

// Loads once; nullptr (with *why set) when the library or a symbol is missing.
const GgmlLib* LoadGgml(std::string* why) {
  static std::string error;
  static const GgmlLib* lib = [] () -> const GgmlLib* {
    auto* l = new GgmlLib;
    l->base_path = FindBaseLib();
    if (l->base_path.empty()) {
      error = "libggml-base.so not found (set KILN_GGML_BASE_LIB or run scripts/install_deps.sh)";
      return nullptr;
    }
    void* base = dlopen(l->base_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (base == nullptr) {
      error = std::string("dlopen failed: ") + dlerror();
      return nullptr;
    }
    for (DType t : kQuantTypes) {
      const std::string name = DTypeName(t);
      l->quantize[t] = Sym<GgmlQuantizeFn>(base, "quantize_row_" + name + "_ref");
      if (t != DType::kQ8_1) {  // ggml has no Q8_1 dequantizer
        l->dequantize[t] = Sym<GgmlDequantizeFn>(base, "dequantize_row_" + name);
      }
    }
    l->fp16_to_fp32 = Sym<float (*)(uint16_t)>(base, "ggml_fp16_to_fp32");
    l->fp32_to_fp16 = Sym<uint16_t (*)(float)>(base, "ggml_fp32_to_fp16");
    l->bf16_to_fp32 = Sym<float (*)(uint16_t)>(base, "ggml_bf16_to_fp32");
    l->fp32_to_bf16 = Sym<uint16_t (*)(float)>(base, "ggml_fp32_to_bf16");
    l->fp32_to_fp16_row =
        Sym<void (*)(const float*, uint16_t*, int64_t)>(base, "ggml_fp32_to_fp16_row");
    l->fp32_to_bf16_row_ref =
        Sym<void (*)(const float*, uint16_t*, int64_t)>(base, "ggml_fp32_to_bf16_row_ref");
    for (const auto& [t, fn] : l->quantize) {
      if (fn == nullptr) error = "missing quantize_row_*_ref for " + std::string(DTypeName(t));
    }
    for (const auto& [t, fn] : l->dequantize) {
      if (fn == nullptr) error = "missing dequantize_row_* for " + std::string(DTypeName(t));
    }
    if (!l->fp16_to_fp32 || !l->fp32_to_fp16 || !l->bf16_to_fp32 || !l->fp32_to_bf16 ||
        !l->fp32_to_fp16_row || !l->fp32_to_bf16_row_ref) {
      error = "missing f16/bf16 conversion symbols";
    }
    if (!error.empty()) return nullptr;
    // The baseline-x86 CPU backend runs ggml's generic (scalar) vec_dot code.
    const std::string dir = l->base_path.substr(0, l->base_path.rfind('/'));
    l->cpu_traits = LoadCpuVariant(dir, "x64");
    l->simd_name = BestSimdVariant();
    if (!l->simd_name.empty()) l->simd_cpu_traits = LoadCpuVariant(dir, l->simd_name);
    return l;
  }();
  *why = error;
  return lib;
}

#define KILN_GGML_OR_SKIP(lib)                                                   \
  std::string why_;                                                              \
  const GgmlLib* lib = LoadGgml(&why_);                                          \
  if (lib == nullptr) {                                                          \
    if (Env("KILN_REQUIRE_ORACLES") == "1") FAIL() << "ggml oracle: " << why_;  \
    GTEST_SKIP() << "ggml oracle unavailable: " << why_;                         \
  }

bool Verbose() { return Env("KILN_QUANT_VERBOSE") == "1"; }

// ── Inputs ──────────────────────────────────────────────────────────────────────────────

enum class Dist {
  kGaussian, kUniform, kPositive, kSmall, kLarge, kTiny, kHuge, kZero, kConstant,
  kNegConstant, kOutliers, kSparse, kBlockScales, kHalfIntegers, kFp16Edge,
};
constexpr Dist kDists[] = {
    Dist::kGaussian, Dist::kUniform,     Dist::kPositive,   Dist::kSmall,       Dist::kLarge,
    Dist::kTiny,     Dist::kHuge,        Dist::kZero,       Dist::kConstant,    Dist::kNegConstant,
    Dist::kOutliers, Dist::kSparse,      Dist::kBlockScales, Dist::kHalfIntegers,
    Dist::kFp16Edge,
};

std::vector<float> MakeRow(Dist dist, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed * 7919u + static_cast<uint32_t>(dist));
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> unif(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  float block_scale = 1.0f;
  for (int64_t i = 0; i < n; ++i) {
    float& v = x[static_cast<size_t>(i)];
    switch (dist) {
      case Dist::kGaussian: v = gauss(rng); break;
      case Dist::kUniform: v = unif(rng); break;
      case Dist::kPositive: v = 0.5f * (unif(rng) + 1.0f) + 0.01f; break;
      case Dist::kSmall: v = 1e-3f * gauss(rng); break;
      case Dist::kLarge: v = 1e3f * gauss(rng); break;
      case Dist::kTiny: v = 1e-9f * gauss(rng); break;    // f16 scales underflow
      case Dist::kHuge: v = 1e6f * gauss(rng); break;     // f16 scales overflow to inf
      case Dist::kZero: v = 0.0f; break;
      case Dist::kConstant: v = 0.75f; break;
      case Dist::kNegConstant: v = -3.0f; break;
      case Dist::kOutliers: v = (rng() % 61 == 0) ? 100.0f * gauss(rng) : gauss(rng); break;
      case Dist::kSparse: v = (rng() % 16 == 0) ? gauss(rng) : 0.0f; break;
      case Dist::kBlockScales:
        if (i % 32 == 0) block_scale = std::pow(10.0f, 8.0f * unif(rng));
        v = block_scale * gauss(rng);
        break;
      case Dist::kHalfIntegers:  // exact .5 ties everywhere
        v = 0.5f * static_cast<float>(static_cast<int>(rng() % 33) - 16);
        break;
      case Dist::kFp16Edge: v = 6e4f * unif(rng); break;  // scales near the f16 max
    }
  }
  return x;
}

constexpr int64_t kRowLens[] = {256, 1024, 4096};
constexpr uint32_t kSeeds[] = {1, 2, 3};

// ── Quantize and dequantize, byte for byte / bit for bit ────────────────────────────────

TEST(QuantGgmlTest, QuantizedBlocksAreByteIdentical) {
  KILN_GGML_OR_SKIP(lib);
  for (DType t : kQuantTypes) {
    const DTypeInfo& info = Info(t);
    int64_t blocks = 0, identical = 0, rows = 0;
    for (Dist dist : kDists) {
      for (int64_t n : kRowLens) {
        for (uint32_t seed : kSeeds) {
          const std::vector<float> x = MakeRow(dist, n, seed);
          const size_t bytes = *RowBytes(t, n);
          // Zero-filled outputs: ggml's Q8_K leaves bsums of an all-zero block unwritten.
          std::vector<uint8_t> ours(bytes, 0), theirs(bytes, 0);
          ref::QuantizeRow(t, x.data(), ours.data(), n);
          lib->quantize.at(t)(x.data(), theirs.data(), n);
          ++rows;
          for (int64_t b = 0; b < n / info.block_elems; ++b) {
            ++blocks;
            const size_t off = static_cast<size_t>(b) * info.block_bytes;
            if (std::memcmp(ours.data() + off, theirs.data() + off, info.block_bytes) == 0) {
              ++identical;
            } else {
              ADD_FAILURE() << info.name << " dist " << static_cast<int>(dist) << " n " << n
                            << " seed " << seed << ": block " << b << " differs";
            }
          }
        }
      }
    }
    EXPECT_EQ(identical, blocks) << info.name;
    if (Verbose()) {
      std::fprintf(stderr, "quantize %-5s: %lld/%lld blocks byte-identical (%lld rows)\n",
                   info.name, static_cast<long long>(identical),
                   static_cast<long long>(blocks), static_cast<long long>(rows));
    }
  }
}

// The K quantizers' scale search has many close calls (candidate errors compared in
// float): many more gaussian-like blocks than the distribution sweep above.
TEST(QuantGgmlTest, KQuantBlocksByteIdenticalOnManyRows) {
  KILN_GGML_OR_SKIP(lib);
  constexpr int64_t n = 8192;
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_K}) {
    const DTypeInfo& info = Info(t);
    int64_t blocks = 0, identical = 0;
    for (Dist dist : {Dist::kGaussian, Dist::kUniform, Dist::kOutliers, Dist::kPositive}) {
      for (uint32_t seed = 100; seed < 108; ++seed) {
        const std::vector<float> x = MakeRow(dist, n, seed);
        std::vector<uint8_t> ours(*RowBytes(t, n), 0), theirs(*RowBytes(t, n), 0);
        ref::QuantizeRow(t, x.data(), ours.data(), n);
        lib->quantize.at(t)(x.data(), theirs.data(), n);
        for (int64_t b = 0; b < n / info.block_elems; ++b) {
          ++blocks;
          const size_t off = static_cast<size_t>(b) * info.block_bytes;
          if (std::memcmp(ours.data() + off, theirs.data() + off, info.block_bytes) == 0) {
            ++identical;
          }
        }
      }
    }
    EXPECT_EQ(identical, blocks) << info.name;
    if (Verbose()) {
      std::fprintf(stderr, "quantize %-5s (many rows): %lld/%lld blocks byte-identical\n",
                   info.name, static_cast<long long>(identical), static_cast<long long>(blocks));
    }
  }
}

// Dequantization of random block bytes (every bit pattern, NaN/inf scales included) and of
// quantized rows must be bit-identical; the one allowance: with random bytes, a value that
// is NaN in both may carry another NaN payload (see below).
TEST(QuantGgmlTest, DequantizationIsBitIdentical) {
  KILN_GGML_OR_SKIP(lib);
  for (DType t : kQuantTypes) {
    if (t == DType::kQ8_1) continue;  // no ggml dequantizer
    const DTypeInfo& info = Info(t);
    constexpr int64_t n = 4096;
    int64_t values = 0, identical = 0, nan_payload_only = 0;
    std::mt19937 rng(static_cast<uint32_t>(t) + 17);
    for (int trial = 0; trial < 24; ++trial) {
      std::vector<uint8_t> q(*RowBytes(t, n));
      if (trial % 2 == 0) {
        for (uint8_t& b : q) b = static_cast<uint8_t>(rng());
      } else {
        const std::vector<float> x = MakeRow(kDists[trial / 2 % std::size(kDists)], n, trial);
        ref::QuantizeRow(t, x.data(), q.data(), n);
      }
      std::vector<float> ours(n), theirs(n);
      ref::DequantizeRow(t, q.data(), ours.data(), n);
      lib->dequantize.at(t)(q.data(), theirs.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ++values;
        if (FloatBits(ours[i]) == FloatBits(theirs[i])) {
          ++identical;
        } else if (trial % 2 == 0 && std::isnan(ours[i]) && std::isnan(theirs[i])) {
          // d * q + m with NaN in both d and m (random bytes only): which NaN payload an
          // x86 add returns depends on the compiler's operand order, in ggml and in ours.
          ++nan_payload_only;
        } else {
          ADD_FAILURE() << info.name << " trial " << trial << " value " << i << std::hex
                        << ": ours 0x" << FloatBits(ours[i]) << " ggml 0x"
                        << FloatBits(theirs[i]);
        }
      }
    }
    EXPECT_EQ(identical + nan_payload_only, values) << info.name;
    if (Verbose()) {
      std::fprintf(stderr,
                   "dequantize %-5s: %lld/%lld values bit-identical, %lld NaN vs NaN with "
                   "another payload\n",
                   info.name, static_cast<long long>(identical), static_cast<long long>(values),
                   static_cast<long long>(nan_payload_only));
    }
  }
}

// ── F16 / BF16 conversions ──────────────────────────────────────────────────────────────

std::vector<float> ConversionProbeFloats() {
  std::vector<float> fs;
  for (uint32_t h = 0; h < 65536; ++h) {  // every half, its neighbours and the midpoints
    const float v = Fp16ToFp32(static_cast<uint16_t>(h));
    const float next = Fp16ToFp32(static_cast<uint16_t>(h + 1));
    fs.push_back(v);
    fs.push_back(std::nextafter(v, 0.0f));
    fs.push_back(std::nextafter(v, std::copysign(INFINITY, v)));
    if (std::isfinite(v) && std::isfinite(next) && (h & 0x7FFF) != 0x7FFF) {
      const float mid = static_cast<float>((static_cast<double>(v) + next) / 2);
      fs.push_back(mid);
      fs.push_back(std::nextafter(mid, 0.0f));
      fs.push_back(std::nextafter(mid, std::copysign(INFINITY, mid)));
    }
  }
  std::mt19937 rng(4242);
  for (int i = 0; i < 1'000'000; ++i) fs.push_back(FloatFromBits(static_cast<uint32_t>(rng())));
  for (int i = 0; i < 100'000; ++i) {  // bf16 ties and subnormals
    fs.push_back(FloatFromBits((static_cast<uint32_t>(rng()) & 0xFFFF0000u) | 0x8000u));
    fs.push_back(FloatFromBits(static_cast<uint32_t>(rng()) & 0x807FFFFFu));
  }
  return fs;
}

TEST(QuantGgmlTest, Fp16ToFp32AllHalvesBitIdentical) {
  KILN_GGML_OR_SKIP(lib);
  int identical = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = Fp16ToFp32(static_cast<uint16_t>(h));
    const float theirs = lib->fp16_to_fp32(static_cast<uint16_t>(h));
    if (FloatBits(ours) == FloatBits(theirs)) {
      ++identical;
    } else {
      ADD_FAILURE() << std::hex << "half 0x" << h << ": ours 0x" << FloatBits(ours)
                    << " ggml 0x" << FloatBits(theirs);
    }
  }
  EXPECT_EQ(identical, 65536);
}

TEST(QuantGgmlTest, Fp32ToFp16BitIdentical) {
  KILN_GGML_OR_SKIP(lib);
  const std::vector<float> fs = ConversionProbeFloats();
  std::vector<uint16_t> row(fs.size());
  lib->fp32_to_fp16_row(fs.data(), row.data(), static_cast<int64_t>(fs.size()));
  size_t identical = 0;
  for (size_t i = 0; i < fs.size(); ++i) {
    const uint16_t ours = Fp32ToFp16(fs[i]);
    const uint16_t theirs = lib->fp32_to_fp16(fs[i]);
    if (ours == theirs && ours == row[i]) {
      ++identical;
    } else if (identical + 20 > i) {  // report the first few only
      ADD_FAILURE() << std::hex << "f32 0x" << FloatBits(fs[i]) << ": ours 0x" << ours
                    << " ggml 0x" << theirs << " ggml row 0x" << row[i];
    }
  }
  EXPECT_EQ(identical, fs.size());
}

TEST(QuantGgmlTest, Bf16ConversionsBitIdentical) {
  KILN_GGML_OR_SKIP(lib);
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(FloatBits(Bf16ToFp32(static_cast<uint16_t>(h))),
              FloatBits(lib->bf16_to_fp32(static_cast<uint16_t>(h))))
        << std::hex << h;
  }
  const std::vector<float> fs = ConversionProbeFloats();
  std::vector<uint16_t> row(fs.size());
  lib->fp32_to_bf16_row_ref(fs.data(), row.data(), static_cast<int64_t>(fs.size()));
  size_t identical = 0;
  for (size_t i = 0; i < fs.size(); ++i) {
    const uint16_t ours = Fp32ToBf16(fs[i]);
    if (ours == lib->fp32_to_bf16(fs[i]) && ours == row[i]) {
      ++identical;
    } else if (identical + 20 > i) {
      ADD_FAILURE() << std::hex << "f32 0x" << FloatBits(fs[i]) << ": ours 0x" << ours
                    << " ggml 0x" << lib->fp32_to_bf16(fs[i]) << " row 0x" << row[i];
    }
  }
  EXPECT_EQ(identical, fs.size());
}

// ── Dot products ────────────────────────────────────────────────────────────────────────

const DType kWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                              DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                              DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

// Against ggml's generic vec_dot (libggml-cpu-x64): same blocks, same summation order, so
// equal bit for bit is expected and required. Against the best SIMD variant this CPU runs
// (other summation order, FMA): |ours - ggml| <= kMaxDotRelErrVsSimd * sum|w_i a_i|.
constexpr double kMaxDotRelErrVsSimd = 1e-5;  // measured max 4.7e-7 (q5_1, zen4)

struct DotComparison {
  int cases = 0;
  int exact = 0;
  double max_rel_err = 0;  // max |ours - ggml| / sum|w_i a_i| over the non-identical cases
};

// Compares ref::VecDot with `traits`' vec_dot on rows of the given distributions; a
// non-identical result must lie within tol * sum|w_i a_i| (tol 0: must be identical).
DotComparison CompareVecDot(const GgmlLib::TraitsFn traits_fn, DType t, double tol,
                            std::initializer_list<Dist> dists) {
  DotComparison result;
  const GgmlTypeTraitsCpu* traits = traits_fn(static_cast<int>(t));
  EXPECT_NE(traits, nullptr);
  if (traits == nullptr || traits->vec_dot == nullptr) {
    ADD_FAILURE() << "no ggml vec_dot for " << DTypeName(t);
    return result;
  }
  const DType dt = DotTypeFor(t);
  EXPECT_EQ(traits->vec_dot_type, static_cast<int>(dt)) << DTypeName(t) << " dot type";
  for (Dist dist : dists) {
    for (int64_t n : kRowLens) {
      for (uint32_t seed : kSeeds) {
        const std::vector<float> w = MakeRow(dist, n, seed);
        const std::vector<float> a = MakeRow(Dist::kGaussian, n, seed + 1000);
        std::vector<uint8_t> qw(*RowBytes(t, n)), qa(*RowBytes(dt, n));
        ref::QuantizeRow(t, w.data(), qw.data(), n);
        ref::QuantizeRow(dt, a.data(), qa.data(), n);
        const float ours = ref::VecDot(t, qw.data(), qa.data(), n);
        float theirs = NAN;
        traits->vec_dot(static_cast<int>(n), &theirs, 0, qw.data(), 0, qa.data(), 0, 1);
        ++result.cases;
        if (FloatBits(ours) == FloatBits(theirs)) {  // also covers inf/NaN from f16 scales
          ++result.exact;
          continue;
        }
        std::vector<float> dw(n), da(n);
        ref::DequantizeRow(t, qw.data(), dw.data(), n);
        ref::DequantizeRow(dt, qa.data(), da.data(), n);
        double scale = 0;
        for (int64_t i = 0; i < n; ++i) scale += std::fabs(static_cast<double>(dw[i]) * da[i]);
        const double err = std::fabs(static_cast<double>(ours) - theirs);
        result.max_rel_err = std::max(result.max_rel_err, err / scale);
        EXPECT_LE(err, tol * scale)
            << DTypeName(t) << " dist " << static_cast<int>(dist) << " n " << n << " seed "
            << seed << " ours " << ours << " ggml " << theirs;
      }
    }
  }
  return result;
}

TEST(QuantGgmlTest, VecDotBitIdenticalToGgmlGeneric) {
  KILN_GGML_OR_SKIP(lib);
  if (lib->cpu_traits == nullptr) GTEST_SKIP() << "libggml-cpu-x64.so not loadable";
  for (DType t : kWeightTypes) {
    const DotComparison r = CompareVecDot(
        lib->cpu_traits, t, /*tol=*/0.0,
        {Dist::kGaussian, Dist::kOutliers, Dist::kPositive, Dist::kBlockScales, Dist::kSparse});
    EXPECT_EQ(r.exact, r.cases) << DTypeName(t);
    if (Verbose()) {
      std::fprintf(stderr, "vec_dot %-5s: %d/%d bit-identical to ggml-cpu-x64 (generic)\n",
                   DTypeName(t), r.exact, r.cases);
    }
  }
}

TEST(QuantGgmlTest, VecDotWithinToleranceOfGgmlSimd) {
  KILN_GGML_OR_SKIP(lib);
  if (lib->simd_cpu_traits == nullptr) GTEST_SKIP() << "no usable SIMD ggml-cpu variant";
  for (DType t : kWeightTypes) {
    const DotComparison r =
        CompareVecDot(lib->simd_cpu_traits, t, kMaxDotRelErrVsSimd,
                      {Dist::kGaussian, Dist::kOutliers, Dist::kPositive, Dist::kSparse});
    if (Verbose()) {
      std::fprintf(stderr, "vec_dot %-5s: %d/%d bit-identical to ggml-cpu-%s, max rel err %.2e\n",
                   DTypeName(t), r.exact, r.cases, lib->simd_name.c_str(), r.max_rel_err);
    }
  }
}

// What llama.cpp runs for the legacy types on x86 (ggml's AVX2 vec_dot, also in its AVX-512
// builds) is what kiln's SIMD tables run: one fma chain per row in block order and, for the
// *_1 types, an fma chain over the min terms. Required bit for bit: greedy decoding against
// llama.cpp depends on it (tests/py/test_real_model.py).
TEST(QuantGgmlTest, SimdTablesLegacyVecDotBitIdenticalToGgmlSimd) {
  KILN_GGML_OR_SKIP(lib);
  if (lib->simd_cpu_traits == nullptr) GTEST_SKIP() << "no usable SIMD ggml-cpu variant";
  for (const KernelTable* table : AvailableKernelTables()) {
    if (table->isa == "ref") continue;
    for (DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0}) {
      const TypeKernels& k = table->For(t);
      const GgmlTypeTraitsCpu* traits = lib->simd_cpu_traits(static_cast<int>(t));
      ASSERT_NE(traits, nullptr);
      int cases = 0, exact = 0;
      for (Dist dist : {Dist::kGaussian, Dist::kOutliers, Dist::kPositive, Dist::kSparse,
                        Dist::kBlockScales, Dist::kSmall}) {
        for (int64_t n : {32, 64, 96, 576, 1536, 4096}) {
          for (uint32_t seed : kSeeds) {
            const std::vector<float> w = MakeRow(dist, n, seed);
            const std::vector<float> a = MakeRow(Dist::kGaussian, n, seed + 1000);
            std::vector<uint8_t> qw(*RowBytes(t, n)), qa(*RowBytes(k.dot_type, n));
            ref::QuantizeRow(t, w.data(), qw.data(), n);
            k.quantize_dot(a.data(), qa.data(), n);
            const float ours = k.vec_dot(qw.data(), qa.data(), n);
            float theirs = NAN;
            traits->vec_dot(static_cast<int>(n), &theirs, 0, qw.data(), 0, qa.data(), 0, 1);
            ++cases;
            exact += FloatBits(ours) == FloatBits(theirs);
            EXPECT_EQ(FloatBits(ours), FloatBits(theirs))
                << table->isa << " " << DTypeName(t) << " dist " << static_cast<int>(dist)
                << " n " << n << " seed " << seed << ": " << ours << " vs ggml " << theirs;
          }
        }
      }
      if (Verbose()) {
        std::fprintf(stderr, "%s vec_dot %-5s: %d/%d bit-identical to ggml-cpu-%s\n",
                     table->isa.c_str(), DTypeName(t), exact, cases, lib->simd_name.c_str());
      }
    }
  }
}

// The activation quantizers kiln's dot products use (RefKernelTable().quantize_dot) against
// what llama.cpp actually runs at inference on this CPU: the SIMD ggml-cpu variant's
// from_float. Byte-identical blocks are what make greedy decoding agree with llama.cpp.
TEST(QuantGgmlTest, ActivationQuantizersMatchGgmlSimdFromFloat) {
  KILN_GGML_OR_SKIP(lib);
  if (lib->simd_cpu_traits == nullptr) GTEST_SKIP() << "no usable SIMD ggml-cpu variant";
  const KernelTable& table = RefKernelTable();
  for (DType weight : {DType::kQ4_0, DType::kQ4_1, DType::kQ4_K}) {
    const TypeKernels& k = table.For(weight);
    const GgmlTypeTraitsCpu* traits = lib->simd_cpu_traits(static_cast<int>(k.dot_type));
    ASSERT_NE(traits, nullptr);
    ASSERT_NE(traits->from_float, nullptr) << DTypeName(k.dot_type);
    int same = 0, cases = 0;
    for (Dist dist : kDists) {
      if (dist == Dist::kHuge || dist == Dist::kFp16Edge) continue;  // scale overflows f16
      for (uint32_t seed = 0; seed < 3; ++seed) {
        const int64_t n = 1024;
        const std::vector<float> x = MakeRow(dist, n, seed);
        std::vector<uint8_t> ours(*RowBytes(k.dot_type, n)), theirs(ours.size());
        k.quantize_dot(x.data(), ours.data(), n);
        traits->from_float(x.data(), theirs.data(), n);
        ++cases;
        same += ours == theirs;
        EXPECT_EQ(ours, theirs) << DTypeName(k.dot_type) << " dist " << static_cast<int>(dist)
                                << " seed " << seed;
      }
    }
    if (Verbose()) {
      std::fprintf(stderr, "activation %-5s: %d/%d rows byte-identical to ggml-cpu-%s from_float\n",
                   DTypeName(k.dot_type), same, cases, lib->simd_name.c_str());
    }
  }
}

}  // namespace
}  // namespace kiln::kernels
