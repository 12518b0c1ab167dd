// Finds added tokens (special and user-defined) in text: leftmost-longest matching over a byte
// trie, as Hugging Face's AddedVocabulary does. Special tokens are matched only when the caller
// asks (parse_special); user-defined (non-special) tokens always.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pre_tokenizer.h"

namespace kiln::tokenizer {

struct AddedToken {
  int32_t id = -1;
  bool special = false;  // matched only with parse_special
  bool lstrip = false;   // swallows whitespace before it
  bool rstrip = false;   // swallows whitespace after it
};

// Immutable after construction; thread-safe reads.
class AddedTokenMatcher {
 public:
  // One piece of a split: a matched token (id >= 0) or a run of plain text (id == -1).
  struct Piece {
    int32_t id = -1;
    Span span;
  };

  void Add(std::string_view text, const AddedToken& token);
  bool empty() const { return tokens_.empty(); }
  // Splits valid UTF-8 text into plain-text spans and tokens, in order. Empty spans are dropped.
  void Split(std::string_view text, bool parse_special, std::vector<Piece>* out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t token_idx = -1;
  };
  int32_t Child(int32_t node, uint8_t b) const;
  // Longest allowed match at text[pos]; returns token index or -1, sets *len.
  int32_t MatchAt(std::string_view text, size_t pos, bool parse_special, size_t* len) const;

  std::vector<Node> nodes_{Node{}};
  std::vector<AddedToken> tokens_;
  std::array<bool, 256> can_start_{};
};

}  // namespace kiln::tokenizer
