#include "engine/grammar_mask.h"

#include <algorithm>

namespace kiln::engine {
namespace {

// Length of the longest prefix of s that ends on a UTF-8 character boundary (a trailing
// incomplete sequence is cut; invalid bytes are left for the tokenizer to reject).
size_t CompleteUtf8Prefix(const std::string& s) {
  size_t i = s.size();
  size_t back = 0;
  while (i > 0 && back < 4 && (static_cast<uint8_t>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++back;
  }
  if (i == 0) return s.size();
  const uint8_t lead = static_cast<uint8_t>(s[i - 1]);
  size_t need = 0;
  if (lead >= 0xF0) {
    need = 3;
  } else if (lead >= 0xE0) {
    need = 2;
  } else if (lead >= 0xC0) {
    need = 1;
  } else {
    return s.size();  // ASCII (or stray continuation bytes: the tokenizer decides)
  }
  return back >= need ? s.size() : i - 1;
}

// The tokenizer's split of `forced` when encoded after `lead` (which an encoder may extend,
// e.g. with a SentencePiece dummy-prefix space): the tokens after the last boundary where the
// encoded bytes still precede `forced`. Empty unless the bytes are exactly extra + forced with
// that boundary on a token edge and every token plain text.
std::vector<int32_t> SplitAfter(const tokenizer::Tokenizer& tok, const grammar::TokenVocab& vocab,
                                const std::string& lead, const std::string& forced) {
  StatusOr<std::vector<int32_t>> enc =
      tok.Encode(lead + forced, {.add_special = false, .parse_special = false});
  if (!enc.ok()) return {};
  std::string bytes;
  std::vector<size_t> ends;  // bytes.size() after each token
  for (int32_t id : *enc) {
    if (id < 0 || id >= vocab.n_vocab() || vocab.IsEog(id)) return {};
    const std::string& b = vocab.token_bytes(id);
    if (b.empty()) return {};  // special / unknown token: not the forced bytes
    bytes += b;
    ends.push_back(bytes.size());
  }
  if (bytes.size() < forced.size() ||
      bytes.compare(bytes.size() - forced.size(), forced.size(), forced) != 0) {
    return {};
  }
  const size_t extra = bytes.size() - forced.size();
  size_t first = 0;
  if (extra > 0) {
    auto it = std::find(ends.begin(), ends.end(), extra);
    if (it == ends.end()) return {};  // a token straddles the lead and the forced bytes
    first = static_cast<size_t>(it - ends.begin()) + 1;
  }
  return std::vector<int32_t>(enc->begin() + static_cast<std::ptrdiff_t>(first), enc->end());
}

}  // namespace

bool AnyAllowed(const std::vector<uint32_t>& allowed, int32_t n_ids) {
  const size_t n_words = std::min(allowed.size(), static_cast<size_t>((n_ids + 31) / 32));
  for (size_t w = 0; w < n_words; ++w) {
    uint32_t bits = allowed[w];
    if (static_cast<int64_t>(w + 1) * 32 > n_ids) bits &= (1u << (n_ids % 32)) - 1u;
    if (bits != 0) return true;
  }
  return false;
}

bool AnyAllowedOf(const std::vector<uint32_t>& allowed, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    const size_t w = static_cast<size_t>(id) / 32;
    if (id >= 0 && w < allowed.size() && ((allowed[w] >> (id % 32)) & 1u)) return true;
  }
  return false;
}

GrammarTokenMask::GrammarTokenMask(std::shared_ptr<const grammar::CompiledGrammar> grammar,
                                   std::shared_ptr<const tokenizer::Tokenizer> tokenizer)
    : matcher_(std::move(grammar), kRollbackTokens), tok_(std::move(tokenizer)) {}

bool GrammarTokenMask::Fill(std::vector<uint32_t>* allowed) {
  allowed->resize(matcher_.BitmaskWords());
  matcher_.FillNextTokenBitmask(allowed->data());
  // Work bounds exceeded (a too ambiguous grammar): the mask is all clear; say why.
  if (error_.empty() && !matcher_.Error().empty()) error_ = "constraint: " + matcher_.Error();
  return true;
}

void GrammarTokenMask::Accept(int32_t token) {
  if (!error_.empty()) return;
  if (!matcher_.AcceptToken(token)) {
    error_ = matcher_.Error().empty()
                 ? "constraint: token " + std::to_string(token) + " is not allowed by the grammar"
                 : "constraint: " + matcher_.Error();
  }
}

int32_t GrammarTokenMask::AllowedPrefix(std::span<const int32_t> tokens) {
  if (!error_.empty() || matcher_.IsTerminated()) return 0;
  const grammar::TokenVocab& vocab = matcher_.compiled().vocab();
  // The matcher can undo kRollbackTokens accepts: longer guesses are checked that far.
  const size_t limit = std::min(tokens.size(), static_cast<size_t>(kRollbackTokens));
  int32_t n = 0;
  while (static_cast<size_t>(n) < limit && !vocab.IsEog(tokens[n]) &&
         matcher_.AcceptToken(tokens[n])) {
    ++n;
  }
  matcher_.Rollback(n);
  return n;
}

std::vector<int32_t> GrammarTokenMask::Forced(int32_t max_tokens) {
  std::vector<int32_t> ids;
  if (!tok_ || max_tokens <= 0 || !error_.empty() || matcher_.IsTerminated()) return ids;
  std::string forced = matcher_.FindJumpForwardString();
  forced.resize(CompleteUtf8Prefix(forced));
  if (forced.empty()) return ids;
  const grammar::TokenVocab& vocab = matcher_.compiled().vocab();
  // Encoded alone first; an encoder that prepends a space (SentencePiece) gets a newline lead
  // it cannot merge into the forced bytes, so the split after it is the in-text split.
  std::vector<int32_t> split = SplitAfter(*tok_, vocab, "", forced);
  if (split.empty()) split = SplitAfter(*tok_, vocab, "\n", forced);
  // The last token stays with the model: the canonical split may merge it with what follows.
  if (split.size() < 2) return ids;
  const size_t n = std::min(split.size() - 1, static_cast<size_t>(max_tokens));
  std::string bytes;
  for (size_t i = 0; i < n; ++i) bytes += vocab.token_bytes(split[i]);
  if (!matcher_.AcceptString(bytes)) return ids;
  ids.assign(split.begin(), split.begin() + static_cast<std::ptrdiff_t>(n));
  return ids;
}

}  // namespace kiln::engine
