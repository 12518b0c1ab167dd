// Model / config / weights error paths and context semantics, on the tiny Qwen3 fixture
// (tests/testdata/tiny/qwen3) and altered copies of its metadata and tensor list. The logits
// themselves are checked against transformers in tests/golden/model_tiny_test.cc.
#include "model/model.h"

#include <gtest/gtest.h>

#include "model/config.h"

namespace kiln::model {
namespace {

const std::string kQwen3 = std::string(KILN_TESTDATA_DIR) + "/tiny/qwen3";
const std::string kGemmaGguf = std::string(KILN_TESTDATA_DIR) + "/tiny/gemma3.gguf";

// A TensorSource whose metadata and tensor list are edited copies of a real one (tensor
// bytes still point into the real source's mmap, which the copy keeps alive).
class EditedSource : public io::TensorSource {
 public:
  explicit EditedSource(std::unique_ptr<io::TensorSource> base)
      : base_(std::move(base)), meta_(base_->metadata()), tensors_(base_->tensors()) {}
  io::SourceFormat format() const override { return base_->format(); }
  const io::Metadata& metadata() const override { return meta_; }
  const std::vector<io::TensorInfo>& tensors() const override { return tensors_; }
  const std::string& path() const override { return base_->path(); }

  io::Metadata& meta() { return meta_; }
  std::vector<io::TensorInfo>& mutable_tensors() { return tensors_; }

 private:
  std::unique_ptr<io::TensorSource> base_;
  io::Metadata meta_;
  std::vector<io::TensorInfo> tensors_;
};

std::unique_ptr<EditedSource> Open(const std::string& path) {
  auto src = io::OpenTensorSource(path);
  KILN_CHECK(src.ok()) << src.status().ToString();
  return std::make_unique<EditedSource>(std::move(*src));
}

io::MetaValue Int(int64_t v) {
  io::MetaValue m;
  m.type = io::MetaValue::Type::kInt64;
  m.i = v;
  return m;
}

TEST(ConfigTest, ReadsHfAndGgufConfigs) {
  auto hf = ConfigFromSource(*Open(kQwen3));
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  EXPECT_EQ(hf->arch, Arch::kQwen3);
  EXPECT_EQ(hf->head_dim, 32);
  EXPECT_TRUE(hf->qk_norm);
  EXPECT_FALSE(hf->tied_embeddings);
  EXPECT_FLOAT_EQ(hf->rope_theta, 1e6f);

  auto gg = ConfigFromSource(*Open(kGemmaGguf));
  ASSERT_TRUE(gg.ok()) << gg.status().ToString();
  EXPECT_EQ(gg->arch, Arch::kGemma3);
  EXPECT_EQ(gg->norm_weight_offset, 0.0f);  // stored as 1 + w by the converter
  ASSERT_EQ(gg->layer_sliding.size(), 8u);
  for (int il = 0; il < 8; ++il) EXPECT_EQ(gg->IsSliding(il), il != 5) << il;  // llama.cpp: every 6th global
  EXPECT_FLOAT_EQ(gg->rope_theta_local, 10000.0f);
  EXPECT_FLOAT_EQ(gg->embedding_scale, 8.0f);  // sqrt(64)
}

TEST(ConfigTest, BadConfigsGiveClearErrors) {
  {
    auto src = Open(kQwen3);
    src->meta()["num_key_value_heads"] = Int(3);  // 4 heads are not a multiple of 3
    auto cfg = ConfigFromSource(*src);
    EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(cfg.status().message().find("n_heads_kv"), std::string::npos) << cfg.status().ToString();
  }
  {
    auto src = Open(kQwen3);
    src->meta().erase("hidden_size");
    auto cfg = ConfigFromSource(*src);
    EXPECT_EQ(cfg.status().code(), StatusCode::kNotFound);
    EXPECT_NE(cfg.status().message().find("hidden_size"), std::string::npos);
  }
  {
    auto src = Open(kQwen3);
    src->meta()["num_hidden_layers"] = Int(-2);
    EXPECT_EQ(ConfigFromSource(*src).status().code(), StatusCode::kInvalidArgument);
  }
  {
    auto src = Open(kQwen3);
    io::MetaValue s;
    s.type = io::MetaValue::Type::kString;
    s.s = "gpt_bigcode";
    src->meta()["model_type"] = s;
    EXPECT_EQ(ConfigFromSource(*src).status().code(), StatusCode::kUnimplemented);
  }
  {
    auto src = Open(kGemmaGguf);
    src->meta()["gemma3.attention.sliding_window"] = Int(0);
    EXPECT_EQ(ConfigFromSource(*src).status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(WeightsTest, MissingOrMisshapedTensorIsNamed) {
  {
    auto src = Open(kQwen3);
    auto& ts = src->mutable_tensors();
    std::erase_if(ts, [](const io::TensorInfo& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
    auto m = Model::Load(std::move(src), LoadOptions{});
    EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
    EXPECT_NE(m.status().message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos);
  }
  {
    auto src = Open(kQwen3);
    for (io::TensorInfo& t : src->mutable_tensors()) {
      if (t.name == "model.layers.0.self_attn.q_proj.weight") std::swap(t.shape[0], t.shape[1]);  // [128, 64] → [64, 128]
    }
    auto m = Model::Load(std::move(src), LoadOptions{});
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("model.layers.0.self_attn.q_proj.weight"), std::string::npos)
        << m.status().ToString();
  }
}

class ForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoadOptions opts;
    opts.n_threads = 1;
    opts.n_ctx = 8;
    opts.kv_dtype = DType::kF32;
    auto m = Model::Load(kQwen3, opts);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(*m);
    auto ctx = model_->NewContext();
    ASSERT_TRUE(ctx.ok());
    ctx_ = std::move(*ctx);
  }
  std::vector<float> Step(const std::vector<int32_t>& ids) {
    Batch b;
    for (int32_t id : ids) b.Add(id, ctx_->n_past() + static_cast<int32_t>(b.rows.size()), 0, true);
    std::vector<float> logits;
    Status st = model_->Forward(b, *ctx_, &logits);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return logits;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<Context> ctx_;
};

TEST_F(ForwardTest, RejectsBadBatchesWithoutChangingTheContext) {
  std::vector<float> logits;
  Batch b;
  b.Add(384, 0, 0, true);  // n_vocab is 384
  EXPECT_EQ(model_->Forward(b, *ctx_, &logits).code(), StatusCode::kInvalidArgument);
  b.Clear();
  b.Add(-1, 0, 0, true);
  EXPECT_EQ(model_->Forward(b, *ctx_, &logits).code(), StatusCode::kInvalidArgument);
  b.Clear();
  b.Add(5, 1, 0, true);  // does not continue n_past = 0
  EXPECT_EQ(model_->Forward(b, *ctx_, &logits).code(), StatusCode::kInvalidArgument);
  b.Clear();
  b.Add(5, 0, 1, true);  // second sequence
  EXPECT_EQ(model_->Forward(b, *ctx_, &logits).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->Forward(Batch{}, *ctx_, &logits).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ctx_->n_past(), 0);

  Step({1, 2, 3, 4, 5, 6, 7, 8});  // fills n_ctx = 8
  b.Clear();
  b.Add(9, 8, 0, true);
  Status st = model_->Forward(b, *ctx_, &logits);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("n_ctx"), std::string::npos) << st.ToString();
  EXPECT_EQ(ctx_->n_past(), 8);
}

TEST_F(ForwardTest, PagedForwardStopsBetweenLayersWhenAborted) {
  ASSERT_GE(model_->config().n_layers, 2);
  auto storage = model_->NewPagedStorage(/*n_blocks=*/2, /*block_tokens=*/4);
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();
  const std::vector<int32_t> table = {1, 0};
  PagedKv kv;
  kv.storage = storage->get();
  kv.block_tokens = 4;
  kv.tables = {&table};
  auto batch = [](int32_t first_token) {
    Batch b;
    for (int32_t p = 0; p < 6; ++p) b.Add(first_token + p, p, 0, true);
    return b;
  };
  std::vector<float> clean, logits;
  ASSERT_TRUE(model_->ForwardPaged(batch(10), kv, &clean).ok());
  // Other tokens at the same positions, stopped before the second layer: layer 0's K/V of
  // these positions is overwritten, the rest is not computed.
  int polls = 0;
  kv.abort = [&] { return ++polls == 2; };
  EXPECT_EQ(model_->ForwardPaged(batch(50), kv, &logits).code(), StatusCode::kCancelled);
  EXPECT_EQ(polls, 2);
  // Computing the positions again (as the scheduler does) gives the first logits exactly.
  kv.abort = nullptr;
  ASSERT_TRUE(model_->ForwardPaged(batch(10), kv, &logits).ok());
  EXPECT_EQ(logits, clean);
}

TEST_F(ForwardTest, LogitRowsTruncateAndClear) {
  const int64_t v = model_->config().n_vocab;
  const std::vector<float> full = Step({10, 20, 30, 40});
  ASSERT_EQ(full.size(), size_t(4 * v));
  EXPECT_EQ(ctx_->n_past(), 4);

  // Only the rows that ask for logits come back, in order.
  ctx_->Clear();
  Batch b;
  b.Add(10, 0, 0, false);
  b.Add(20, 1, 0, true);
  b.Add(30, 2, 0, false);
  b.Add(40, 3, 0, true);
  std::vector<float> two;
  ASSERT_TRUE(model_->Forward(b, *ctx_, &two).ok());
  ASSERT_EQ(two.size(), size_t(2 * v));
  EXPECT_TRUE(std::equal(two.begin(), two.begin() + v, full.begin() + v));
  EXPECT_TRUE(std::equal(two.begin() + v, two.end(), full.begin() + 3 * v));

  // Truncate to 2 and replay the last two tokens: same logits as the first time.
  ASSERT_TRUE(ctx_->Truncate(2).ok());
  EXPECT_EQ(ctx_->Truncate(3).code(), StatusCode::kInvalidArgument);
  const std::vector<float> again = Step({30, 40});
  EXPECT_TRUE(std::equal(again.begin(), again.end(), full.begin() + 2 * v));
  // A different continuation after truncation overwrites the stale cache entries.
  ASSERT_TRUE(ctx_->Truncate(2).ok());
  const std::vector<float> other = Step({31});
  EXPECT_FALSE(std::equal(other.begin(), other.end(), full.begin() + 2 * v));
}

}  // namespace
}  // namespace kiln::model
