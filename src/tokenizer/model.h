// Internal: everything a loaded tokenizer knows. Built by vocab_gguf.cc / vocab_hf.cc, then
// frozen inside a Tokenizer. Behaviour differences between vocabularies are fields here, set
// once at load time; the encoders never look at model names.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace kiln::tokenizer {

// How decoded pieces are turned into valid UTF-8.
enum class InvalidUtf8Rule {
  kLossy,         // byte-level: maximal invalid subsequences -> one U+FFFD each
  kPerByteToken,  // SentencePiece ByteFallback: an invalid run of <0xXX> tokens -> U+FFFD each
};

struct WordPieceConfig {
  std::string word_prefix;          // "▁" in GGUF BERT vocabularies, "" in tokenizer.json
  std::string continuation_prefix;  // "" in GGUF, "##" in tokenizer.json
  bool lowercase = true;
  bool strip_accents = true;
  bool clean_text = true;
  bool chinese_chars = true;
  size_t max_chars_per_word = 100;
};

struct TokenizerModel {
  VocabKind kind = VocabKind::kByteBpe;

  // ── vocabulary ──
  std::vector<std::string> pieces;  // raw vocab text per id
  std::vector<float> scores;        // SentencePiece scores (may be empty)
  std::vector<TokenType> types;
  PieceIndex index;  // pieces -> id (model vocabulary only, see not_in_model)
  std::vector<std::string> decoded;  // TokenBytes() per id
  std::vector<uint8_t> is_special;   // 1 for control/unknown/HF-special tokens
  // tokenizer.json added tokens that are not in model.vocab: the BPE model cannot produce or
  // look them up (only the added-token matcher can).
  std::vector<uint8_t> not_in_model;

  // ── BPE ──
  MergeTable merges;
  bool merge_by_score = false;  // SentencePiece from GGUF: no merges, scores decide
  bool ignore_merges = false;   // a pre-tokenized word that is a token is kept whole
  std::array<int32_t, 256> byte_ids{};  // byte-level: per-byte symbol; SPM: <0xXX> (or -1)
  std::unique_ptr<RegexSplitter> splitter;  // byte-level pre-tokenizer (null: no split)
  NormalForm normal_form = NormalForm::kNone;

  // ── SentencePiece ──
  bool add_space_prefix = false;  // "▁" before each plain-text segment
  bool space_prefix_first_only = false;  // Metaspace prepend_scheme "first": text start only
  bool escape_spaces = false;     // ' ' -> "▁"
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool strip_leading_space = false;  // decoder drops one leading space
  // Metaspace pre-tokenizer with split: words begin at each "▁".
  bool split_on_metaspace = false;

  // ── WordPiece ──
  WordPieceConfig wordpiece;

  // ── specials ──
  AddedTokenMatcher added;
  int32_t bos = -1, eos = -1, eot = -1, pad = -1, unk = -1, sep = -1, cls = -1;
  bool add_bos = false, add_eos = false;
  std::vector<int32_t> eog;
  std::string chat_template;

  InvalidUtf8Rule utf8_rule = InvalidUtf8Rule::kLossy;

  int32_t Find(std::string_view piece) const {
    return index.Find(pieces, piece);
  }
  bool Valid(int32_t id) const { return id >= 0 && id < static_cast<int32_t>(pieces.size()); }
};

// Shared final steps of both loaders: index, decoded pieces, byte ids, EOG set, checks.
Status FinishModel(TokenizerModel* m);

// WordPiece (BERT) encoding of one plain-text segment.
void EncodeWordPiece(const TokenizerModel& m, std::string_view text, std::vector<int32_t>* out);
std::string DecodeWordPiece(const TokenizerModel& m, std::span<const int32_t> ids,
                            bool skip_special);

}  // namespace kiln::tokenizer
