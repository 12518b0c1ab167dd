// kernels/ggml_exact.h against ggml itself: single-op graphs (rms_norm, rope_ext in normal and
// neox modes, soft_max_ext, swiglu) computed by the prebuilt libggml-base.so +
// libggml-cpu-<variant>.so that npm @node-llama-cpp/linux-x64 ships (the code llama.cpp runs),
// compared bit for bit. The reproduction targets ggml's AVX-512 build ("zen4" variant); on a
// CPU without it the tests skip. Library lookup as in quant_ggml_test.cc ($KILN_GGML_BASE_LIB,
// $KILN_DEPS, ./.deps, /work/main/.deps); missing with KILN_REQUIRE_ORACLES=1: failure.
// tools/oracle/ggml_ops.py is the same oracle from Python.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/ggml_exact.h"
#include "kernels/ref/ggml_oracle_lib.h"

namespace kiln::kernels::ggml {
namespace {

struct InitParams {  // ggml.h struct ggml_init_params
  size_t mem_size;
  void* mem_buffer;
  bool no_alloc;
};
constexpr int kTypeF32 = 0, kTypeI32 = 26;
constexpr int kRopeNormal = 0, kRopeNeox = 2;

struct Api {
  void* (*init)(InitParams) = nullptr;
  void (*free)(void*) = nullptr;
  void* (*new_1d)(void*, int, int64_t) = nullptr;
  void* (*new_2d)(void*, int, int64_t, int64_t) = nullptr;
  void* (*new_3d)(void*, int, int64_t, int64_t, int64_t) = nullptr;
  void* (*get_data)(void*) = nullptr;
  void* (*rms_norm)(void*, void*, float) = nullptr;
  void* (*rope_ext)(void*, void*, void*, void*, int, int, int, float, float, float, float, float,
                    float) = nullptr;
  void* (*soft_max_ext)(void*, void*, void*, float, float) = nullptr;
  void* (*swiglu_split)(void*, void*, void*) = nullptr;
  void* (*new_graph)(void*) = nullptr;
  void (*build_forward_expand)(void*, void*) = nullptr;
  int (*compute)(void*, void*, int) = nullptr;
};

using test::Env;
const auto FindBaseLib = test::FindGgmlBaseLib;

bool HasAvx512Build() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bf16");
}

template <typename Fn>
void Bind(void* lib, const char* name, Fn* fn, std::string* error) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (*fn == nullptr && error->empty()) *error = std::string("missing symbol ") + name;
}

const Api* LoadApi(std::string* why) {
  static std::string error;
  static const Api* api = []() -> const Api* {
    const std::string base_path = FindBaseLib();
    if (base_path.empty()) {
      error = "libggml-base.so not found (run scripts/install_deps.sh)";
      return nullptr;
    }
    void* base = dlopen(base_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    const std::string cpu_path = base_path.substr(0, base_path.rfind('/')) + "/libggml-cpu-zen4.so";
    void* cpu = base != nullptr ? dlopen(cpu_path.c_str(), RTLD_NOW | RTLD_GLOBAL) : nullptr;
    if (cpu == nullptr) {
      error = std::string("dlopen failed: ") + dlerror();
      return nullptr;
    }
    auto* a = new Api;
    Bind(base, "ggml_init", &a->init, &error);
    Bind(base, "ggml_free", &a->free, &error);
    Bind(base, "ggml_new_tensor_1d", &a->new_1d, &error);
    Bind(base, "ggml_new_tensor_2d", &a->new_2d, &error);
    Bind(base, "ggml_new_tensor_3d", &a->new_3d, &error);
    Bind(base, "ggml_get_data", &a->get_data, &error);
    Bind(base, "ggml_rms_norm", &a->rms_norm, &error);
    Bind(base, "ggml_rope_ext", &a->rope_ext, &error);
    Bind(base, "ggml_soft_max_ext", &a->soft_max_ext, &error);
    Bind(base, "ggml_swiglu_split", &a->swiglu_split, &error);
    Bind(base, "ggml_new_graph", &a->new_graph, &error);
    Bind(base, "ggml_build_forward_expand", &a->build_forward_expand, &error);
    Bind(cpu, "ggml_graph_compute_with_ctx", &a->compute, &error);
    void (*cpu_init)() = nullptr;
    Bind(cpu, "ggml_cpu_init", &cpu_init, &error);
    if (!error.empty()) return nullptr;
    cpu_init();
    return a;
  }();
  *why = error;
  return api;
}

#define KILN_GGML_API_OR_SKIP(api)                                                    \
  if (!HasAvx512Build()) GTEST_SKIP() << "no AVX-512: ggml_exact reproduces ggml's AVX-512 build"; \
  std::string why_;                                                                   \
  const Api* api = LoadApi(&why_);                                                    \
  if (api == nullptr) {                                                               \
    if (Env("KILN_REQUIRE_ORACLES") == "1") FAIL() << "ggml oracle: " << why_;       \
    GTEST_SKIP() << "ggml oracle unavailable: " << why_;                              \
  }

// One ggml context per op; tensors created from host arrays (ne0 innermost).
class Graph {
 public:
  explicit Graph(const Api* api) : api_(api) { ctx_ = api->init({256 << 20, nullptr, false}); }
  ~Graph() { api_->free(ctx_); }
  void* ctx() const { return ctx_; }
  void* F32(const std::vector<float>& v, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
    void* t = api_->new_3d(ctx_, kTypeF32, ne0, ne1, ne2);
    std::memcpy(api_->get_data(t), v.data(), v.size() * sizeof(float));
    return t;
  }
  void* I32(const std::vector<int32_t>& v) {
    void* t = api_->new_1d(ctx_, kTypeI32, static_cast<int64_t>(v.size()));
    std::memcpy(api_->get_data(t), v.data(), v.size() * sizeof(int32_t));
    return t;
  }
  std::vector<float> Run(void* out, size_t n) {
    void* g = api_->new_graph(ctx_);
    api_->build_forward_expand(g, out);
    EXPECT_EQ(api_->compute(ctx_, g, 1), 0);
    std::vector<float> r(n);
    std::memcpy(r.data(), api_->get_data(out), n * sizeof(float));
    return r;
  }

 private:
  const Api* api_;
  void* ctx_;
};

std::vector<float> Gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

size_t CountSameBits(const std::vector<float>& a, const std::vector<float>& b) {
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += std::memcmp(&a[i], &b[i], 4) == 0;
  return same;
}

TEST(GgmlExactTest, RmsNormBitIdentical) {
  KILN_GGML_API_OR_SKIP(api);
  for (int64_t n : {64, 576, 640, 2048}) {
    const int64_t rows = 7;
    const std::vector<float> x = Gaussian(n * rows, static_cast<uint32_t>(n), 3.0f);
    Graph g(api);
    const std::vector<float> want = g.Run(api->rms_norm(g.ctx(), g.F32(x, n, rows), 1e-5f), x.size());
    const std::vector<float> ones(n, 1.0f);
    std::vector<float> got(x.size());
    for (int64_t r = 0; r < rows; ++r) RmsNorm(&x[r * n], ones.data(), 0.0f, 1e-5f, n, &got[r * n]);
    EXPECT_EQ(CountSameBits(got, want), got.size()) << "n " << n;
  }
}

void CheckRope(const Api* api, int mode, RopeStyle style, int head_dim, float base,
               float freq_scale, bool with_factors) {
  const int n_heads = 3;
  const std::vector<int32_t> pos = {0, 1, 5, 31, 200, 1000, 7777};
  const std::vector<float> x = Gaussian(pos.size() * n_heads * head_dim, 11u + head_dim);
  std::vector<float> factors(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) factors[i] = 1.0f + 0.37f * static_cast<float>(i % 5);
  Graph g(api);
  void* ff = with_factors ? g.F32(factors, head_dim / 2) : nullptr;
  void* out = api->rope_ext(g.ctx(), g.F32(x, head_dim, n_heads, static_cast<int64_t>(pos.size())),
                            g.I32(pos), ff, head_dim, mode, 0, base, freq_scale, 0.0f, 1.0f,
                            32.0f, 1.0f);
  const std::vector<float> want = g.Run(out, x.size());
  std::vector<float> got = x;
  const RopeParams rp = MakeRopeParams(base, head_dim, freq_scale, with_factors ? factors.data() : nullptr);
  for (size_t t = 0; t < pos.size(); ++t) {
    Rope(&got[t * n_heads * head_dim], n_heads, head_dim, rp, pos[t], style);
  }
  EXPECT_EQ(CountSameBits(got, want), got.size())
      << "mode " << mode << " head_dim " << head_dim << " base " << base;
}

TEST(GgmlExactTest, RopeBitIdentical) {
  KILN_GGML_API_OR_SKIP(api);
  CheckRope(api, kRopeNormal, RopeStyle::kInterleaved, 64, 100000.0f, 1.0f, false);
  CheckRope(api, kRopeNormal, RopeStyle::kInterleaved, 128, 500000.0f, 1.0f, true);
  CheckRope(api, kRopeNeox, RopeStyle::kNeox, 256, 1000000.0f, 0.125f, false);
  CheckRope(api, kRopeNeox, RopeStyle::kNeox, 64, 10000.0f, 1.0f, false);
}

TEST(GgmlExactTest, SwiGluBitIdentical) {
  KILN_GGML_API_OR_SKIP(api);
  const int64_t n = 1536, rows = 3;
  std::vector<float> gate = Gaussian(n * rows, 5, 4.0f), up = Gaussian(n * rows, 6);
  gate[0] = -120.0f;  // exp overflow / underflow corners
  gate[1] = 95.0f;
  Graph g(api);
  const std::vector<float> want =
      g.Run(api->swiglu_split(g.ctx(), g.F32(gate, n, rows), g.F32(up, n, rows)), gate.size());
  std::vector<float> got(gate.size());
  SwiGlu(gate.data(), up.data(), n * rows, got.data());
  EXPECT_EQ(CountSameBits(got, want), got.size());
}

// ggml_soft_max_ext over whole rows: Expf, the chunked double sum, the float reciprocal, the
// way AttentionRows computes its probabilities (before their f16 rounding).
TEST(GgmlExactTest, SoftMaxMatchesAttentionProbabilities) {
  KILN_GGML_API_OR_SKIP(api);
  const int64_t n = 256, rows = 5;
  const std::vector<float> x = Gaussian(n * rows, 9, 6.0f);
  Graph g(api);
  const std::vector<float> want = g.Run(api->soft_max_ext(g.ctx(), g.F32(x, n, rows), nullptr, 0.125f, 0.0f), x.size());
  std::vector<float> got(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = &x[r * n];
    float* out = &got[r * n];
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::max(max, in[i] * 0.125f);
    double sum = 0.0;
    for (int64_t c = 0; c < n; c += 16) {
      float v[16], a[8], b[4];
      for (int i = 0; i < 16; ++i) v[i] = out[c + i] = Expf(in[c + i] * 0.125f - max);
      for (int i = 0; i < 8; ++i) a[i] = v[i + 8] + v[i];
      for (int i = 0; i < 4; ++i) b[i] = a[i + 4] + a[i];
      sum += (b[0] + b[2]) + (b[1] + b[3]);
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) out[i] *= inv;
  }
  EXPECT_EQ(CountSameBits(got, want), got.size());
}

}  // namespace
}  // namespace kiln::kernels::ggml
