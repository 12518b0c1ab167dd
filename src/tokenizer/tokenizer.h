// Tokenizer: text <-> token ids for the vocabularies real models ship: byte-level BPE
// (GPT-2 / Llama 3 / Qwen2 …, pre-tokenizer chosen from a table), SentencePiece-style BPE with
// byte fallback (Llama 2 / Gemma / Mistral / Phi-3), and WordPiece (BERT).
// Loaded from GGUF metadata (tokenizer.ggml.*) or a Hugging Face tokenizer.json
// (+ tokenizer_config.json beside it). Immutable after loading; every method is thread-safe.
// Non-goals: Unigram (T5) and RWKV vocabularies; pair encodings; offsets.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "io/tensor_source.h"

namespace kiln::tokenizer {

// GGUF token_type values 1..6 in order.
enum class TokenType { kNormal, kUnknown, kControl, kUserDefined, kUnused, kByte };

enum class VocabKind { kByteBpe, kSentencePieceBpe, kWordPiece };

struct EncodeOptions {
  bool add_special = false;    // add BOS/EOS as the model's config says
  bool parse_special = false;  // special-token text in the input becomes the special token
};

struct TokenizerModel;  // internal (tokenizer/model.h)

class Tokenizer {
 public:
  static StatusOr<std::shared_ptr<const Tokenizer>> FromMetadata(const io::Metadata& gguf_meta);
  // A tokenizer.json path, or a folder holding tokenizer.json (+ tokenizer_config.json).
  static StatusOr<std::shared_ptr<const Tokenizer>> FromHfFiles(const std::string& dir_or_json);
  // GGUF: its metadata; Hugging Face folder: the tokenizer files in it.
  static StatusOr<std::shared_ptr<const Tokenizer>> FromSource(const io::TensorSource& src);

  explicit Tokenizer(std::unique_ptr<TokenizerModel> model);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // InvalidArgument if text is not valid UTF-8.
  StatusOr<std::vector<int32_t>> Encode(std::string_view text, const EncodeOptions& opts) const;
  // Valid UTF-8 (invalid byte sequences become U+FFFD as the reference library does).
  // Ids out of range are skipped.
  std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const;

  std::string_view TokenText(int32_t id) const;  // raw vocab piece; "" if out of range
  TokenType GetTokenType(int32_t id) const;      // kUnused if out of range
  // The bytes this token stands for in output text (▁ -> space, <0xXX> -> byte, byte-level
  // characters -> bytes); "" for control tokens when skip_special. May be partial UTF-8.
  std::string_view TokenBytes(int32_t id, bool skip_special) const;
  bool IsSpecial(int32_t id) const;  // control / unknown tokens, HF special added tokens

  VocabKind kind() const;
  int32_t n_vocab() const;
  int32_t bos_id() const;  // -1 if none (same for the others)
  int32_t eos_id() const;
  int32_t eot_id() const;
  int32_t pad_id() const;
  int32_t unk_id() const;
  bool IsEndOfGeneration(int32_t id) const;  // eos, eot, <|im_end|>, <end_of_turn>, …
  const std::vector<int32_t>& eog_ids() const;
  bool add_bos() const;
  bool add_eos() const;
  // SentencePiece leading-space rule: the first piece of decoded text loses one leading space.
  bool strips_leading_space() const;
  const std::string& chat_template() const;  // "" if none
  std::string_view bos_text() const;          // "" if no BOS
  std::string_view eos_text() const;

  const TokenizerModel& model() const { return *m_; }

 private:
  std::unique_ptr<TokenizerModel> m_;
};

}  // namespace kiln::tokenizer
