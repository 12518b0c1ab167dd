// Pre-tokenizers: split text into words before BPE. The variants real models use are one data
// table keyed by PreTokenizer (GGUF `tokenizer.ggml.pre` names map onto rows); a Hugging Face
// tokenizer.json brings its own Split regexes, which run through the same RegexSplitter.
// Regexes run on PCRE2 (UTF + UCP, JIT). `\s` / `\S` are rewritten to Unicode White_Space
// (PCRE2's UCP \s leaves out U+0085, which Oniguruma and llama.cpp include).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace kiln::tokenizer {

enum class PreTokenizer {
  kDefault, kLlama3, kDeepseekLlm, kDeepseekCoder, kDeepseek3, kFalcon, kStarcoder, kGpt2,
  kQwen2, kPoro, kViking, kTekken, kGpt4o, kSeedCoder, kBailingMoe, kChameleon, kSuperBpe,
  kNone,  // no regex split (SentencePiece, WordPiece, or a tokenizer.json without Split)
};

struct PreTokenizerSpec {
  PreTokenizer id;
  // GGUF `tokenizer.ggml.pre` values that select this row.
  std::vector<std::string_view> gguf_names;
  // Applied in order; each one splits every fragment into matches and the gaps between them.
  std::vector<std::string_view> regexes;
  bool ignore_merges;  // a word that is itself a token skips BPE (Llama 3)
};

const PreTokenizerSpec& SpecFor(PreTokenizer p);
// Row for a GGUF `tokenizer.ggml.pre` value; NotFound for unknown names.
StatusOr<PreTokenizer> PreTokenizerFromGgufName(std::string_view name);

// A byte range [begin, end) of the text being tokenized.
struct Span {
  size_t begin = 0, end = 0;
};

// A sequence of compiled regexes. Immutable and thread-safe after Create.
class RegexSplitter {
 public:
  static StatusOr<std::unique_ptr<RegexSplitter>> Create(const std::vector<std::string>& regexes);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Splits text[in] (valid UTF-8) into words; appends them to *out.
  void Split(std::string_view text, Span in, std::vector<Span>* out) const;

 private:
  RegexSplitter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rewrites `\s` and `\S` (in and outside classes) to explicit White_Space sets.
std::string RewriteWhitespaceClasses(std::string_view regex);

}  // namespace kiln::tokenizer
