// Detokenizer: turns a stream of generated token ids into text deltas that are always valid
// UTF-8. It holds back the bytes of a character that is not complete yet (byte-level BPE and
// <0xXX> byte-fallback tokens split characters across tokens), applies the SentencePiece
// leading-space rule, and holds back any suffix that could still grow into a stop string, so
// a stop string that spans tokens is never emitted.
// One per sequence; not thread-safe (the engine thread owns it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace kiln::tokenizer {

class Detokenizer {
 public:
  // skip_special: control tokens (BOS, <|im_end|> …) produce no text.
  explicit Detokenizer(std::shared_ptr<const Tokenizer> tokenizer,
                       std::vector<std::string> stop_strings = {}, bool skip_special = true);

  // Adds one token; returns the text that is now safe to emit (may be empty). After a stop
  // string matched, returns the text before it (once) and then "" forever.
  std::string Push(int32_t id);
  // End of stream: flushes what was held back (an unfinished character becomes U+FFFD).
  std::string Finish();

  bool stopped() const { return stop_idx_ >= 0; }
  int stop_index() const { return stop_idx_; }  // which stop string matched, or -1
  // All text emitted so far.
  const std::string& text() const { return emitted_; }

 private:
  std::string Release(std::string text, bool final);

  std::shared_ptr<const Tokenizer> tok_;
  std::vector<std::string> stops_;
  bool skip_special_;
  bool strip_space_;        // the next non-empty text loses one leading space
  std::string raw_;         // bytes of an unfinished UTF-8 character
  std::string held_;        // valid text that may be the start of a stop string
  std::string emitted_;
  int stop_idx_ = -1;
};

}  // namespace kiln::tokenizer
