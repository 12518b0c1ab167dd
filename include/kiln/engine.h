// kiln's public C++ API: load a model, generate, tokenize, render chat templates.
// Front ends (cli/, server/, python/) use only this header. Errors are kiln::Status values
// (base/status.h is the one internal header the public API re-exports: a leaf with no deps).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace kiln {

// Speculative decoding (#15): guessed tokens are verified in the same forward as the token
// before them. It never changes the output (greedy or sampled: every token is still sampled
// from the model's own logits with the request's RNG); it only saves forwards.
enum class SpeculateMode {
  kOff,
  // Prompt lookup, every guess it finds (up to draft_max): guesses copied from where the
  // recent tokens occurred before in the prompt or the output.
  kLookup,
  // A draft model (SpeculateOptions::draft_model), draft_max greedy guesses every step.
  kDraft,
  // Where it pays: each sequence guesses as many tokens as its acceptance rate and the
  // measured cost of a step's rows (and of the draft model's forwards) pay for; none in a full
  // batch. Guesses from the draft model when one is given, else prompt lookup.
  kAuto,
};
struct SpeculateOptions {
  SpeculateMode mode = SpeculateMode::kAuto;
  int draft_max = 0;  // most guessed tokens per sequence per step; 0 → 8 (lookup), 4 (draft)
  // A model kiln loads with the very same vocabulary as the target (checked at load: the
  // error names the first token that differs); empty: none.
  std::string draft_model;
};
// "off" | "lookup" | "draft" | "auto"; InvalidArgument naming the accepted values otherwise.
StatusOr<SpeculateMode> ParseSpeculateMode(std::string_view text);
const char* SpeculateModeName(SpeculateMode mode);

struct LoadOptions {
  std::string model;   // .gguf path, HF folder, hf://org/name[/file], or "default"
  int n_threads = 0;   // 0 → all hardware threads
  int n_ctx = 0;       // 0 → min(training context, 4096)
  SpeculateOptions speculate;  // for Generate
};

struct TensorSummary {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;  // row-major, outermost first
  uint64_t n_bytes = 0;
};

struct ModelInfo {
  std::string path;          // resolved local file or folder
  std::string format;        // "gguf" | "safetensors"
  std::string architecture;  // "llama", "qwen2", "qwen3", "gemma3"
  std::string name;          // general.name / HF _name_or_path, may be empty
  uint64_t n_params = 0;
  uint64_t n_bytes = 0;      // bytes of tensor data
  int64_t n_vocab = 0, n_ctx_train = 0, n_embd = 0, n_layers = 0, n_heads = 0, n_heads_kv = 0,
          head_dim = 0, n_ff = 0;
  std::map<std::string, int64_t> dtype_counts;  // tensor dtype → count
  std::string chat_template;                    // "" if none
  int32_t bos_id = -1, eos_id = -1, eot_id = -1;
  std::vector<TensorSummary> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;  // key → printable value
};

// Reads a model's description without loading weights for compute.
StatusOr<ModelInfo> InspectModel(const std::string& model);
// Resolves a model reference to a local path, downloading hf:// references into the cache.
StatusOr<std::string> ResolveModel(const std::string& model);

// Structured generation (#7): every choice's output is a sentence of this grammar (or a valid
// prefix of one when it stops for length). The end-of-generation token is allowed only where
// the grammar may end; when it must end, generation stops with finish_reason "stop".
// Where the grammar forces the next bytes, they are emitted without sampling (jump-forward).
struct Constraint {
  enum class Kind { kNone, kJsonObject, kJsonSchema, kGbnf };
  Kind kind = Kind::kNone;
  std::string text;   // kJsonSchema: the schema document (JSON); kGbnf: the grammar; else ""
  std::string field;  // the request field it came from, for error messages ("response_format")
};

struct GenerateRequest {
  std::string prompt;               // text; ignored when prompt_ids is non-empty
  std::vector<int32_t> prompt_ids;  // token ids, used as is
  bool chat = false;                // wrap prompt as one user message in the chat template
  bool add_special = true;          // add BOS/EOS as the model's tokenizer says (text prompts)
  bool parse_special = false;       // special-token text in the prompt is parsed as tokens
  int32_t max_tokens = 128;
  float temperature = 0.8f;         // <= 0 → greedy
  int32_t top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  uint64_t seed = 0;
  std::vector<std::string> stop;    // stop strings (never emitted)
  bool ignore_eos = false;
  Constraint constraint;            // kNone = unconstrained; errors name constraint.field
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;
  std::string text;
  std::string finish_reason;  // "stop" (EOS/EOT, stop string, grammar complete) | "length"
  int32_t n_forced = 0;       // output tokens the grammar forced (jump-forward: not sampled)
  int32_t drafted_tokens = 0;   // speculation: guessed tokens verified
  int32_t accepted_tokens = 0;  // of those, the ones the model's own sampling confirmed
  double prompt_ms = 0;       // prefill time
  double gen_ms = 0;          // time after the first token
  double load_ms = 0;         // model load time (filled by the engine's first user)
};

struct PerplexityResult {
  int32_t n_ctx = 0;
  int32_t n_chunks = 0;
  int64_t n_scored = 0;            // tokens whose NLL was counted
  double perplexity = 0;
  std::vector<double> chunk_nll;   // mean NLL per chunk
};

struct BenchResult {
  int32_t n_prompt = 0, n_gen = 0, n_threads = 0, n_reps = 0;
  double pp_tok_s = 0, tg_tok_s = 0;          // means over the repetitions (wall time)
  double pp_tok_s_std = 0, tg_tok_s_std = 0;  // sample standard deviations
  std::vector<double> pp_runs, tg_runs;       // tokens/s of each repetition
  double pp_cpu_s = 0, tg_cpu_s = 0;          // mean process CPU seconds per run (all threads)
  double pp_wall_s = 0, tg_wall_s = 0;        // mean wall seconds per run
  double load_ms = 0;                         // model load time
  std::string isa;
  // tg memory roofline (0 without tg): read bandwidth measured with the same thread count
  // (GB/s), bytes a decode step reads at the mean tg position, and tg_tok_s × bytes ÷ bandwidth.
  double read_gbs = 0, tg_bytes_per_token = 0, tg_roofline = 0;
};

// One loaded model + tokenizer + a generation context. Not thread-safe (one caller at a time);
// the serving engine (issue #5) adds concurrency on top of the same interface.
class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Load(const LoadOptions& options);
  virtual ~Engine() = default;

  virtual const ModelInfo& Info() const = 0;
  // on_text receives UTF-8-safe text deltas as they are generated; return false to stop early.
  virtual StatusOr<GenerateResult> Generate(
      const GenerateRequest& request,
      const std::function<bool(std::string_view delta)>& on_text = nullptr) = 0;
  virtual StatusOr<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special,
                                                  bool parse_special) const = 0;
  virtual std::string Detokenize(const std::vector<int32_t>& ids) const = 0;
  // messages_json: OpenAI-style messages array; tools_json: "" or a tools array.
  virtual StatusOr<std::string> ApplyChatTemplate(const std::string& messages_json,
                                                  const std::string& tools_json,
                                                  bool add_generation_prompt) const = 0;
  // llama.cpp-style perplexity: chunks of n_ctx tokens, the second half of each scored.
  virtual StatusOr<PerplexityResult> Perplexity(std::string_view text, int32_t n_ctx,
                                                int32_t max_chunks) = 0;
  // Raw logits of every position of `ids` (fresh context), [ids.size() * n_vocab].
  virtual StatusOr<std::vector<float>> Logits(const std::vector<int32_t>& ids) = 0;
  // n_reps timed repetitions of (prefill n_prompt, then n_gen decode steps) after a warm-up.
  virtual StatusOr<BenchResult> Bench(int32_t n_prompt, int32_t n_gen, int32_t n_reps = 1) = 0;
};

// A tokenizer alone (from a model file/folder or a tokenizer.json), for `kiln tokenize`.
class TokenizerHandle {
 public:
  static StatusOr<std::unique_ptr<TokenizerHandle>> Load(const std::string& model_or_tokenizer);
  virtual ~TokenizerHandle() = default;
  virtual StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special,
                                                bool parse_special) const = 0;
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  virtual std::string Piece(int32_t id) const = 0;  // raw vocabulary entry
  virtual int32_t VocabSize() const = 0;
  virtual StatusOr<std::string> ApplyChatTemplate(const std::string& messages_json,
                                                  const std::string& tools_json,
                                                  bool add_generation_prompt) const = 0;
};

}  // namespace kiln
