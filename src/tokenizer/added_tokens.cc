#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace kiln::tokenizer {

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t b) const {
  const auto& next = nodes_[node].next;
  auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(b, int32_t{-1}));
  return it != next.end() && it->first == b ? it->second : -1;
}

void AddedTokenMatcher::Add(std::string_view text, const AddedToken& token) {
  if (text.empty()) return;
  int32_t node = 0;
  for (char ch : text) {
    uint8_t b = static_cast<uint8_t>(ch);
    int32_t child = Child(node, b);
    if (child < 0) {
      child = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& next = nodes_[node].next;
      next.insert(std::upper_bound(next.begin(), next.end(), std::make_pair(b, child)),
                  std::make_pair(b, child));
    }
    node = child;
  }
  if (nodes_[node].token_idx >= 0) {
    tokens_[nodes_[node].token_idx] = token;  // same text twice: the later entry wins
  } else {
    nodes_[node].token_idx = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(token);
  }
  can_start_[static_cast<uint8_t>(text[0])] = true;
}

int32_t AddedTokenMatcher::MatchAt(std::string_view text, size_t pos, bool parse_special,
                                   size_t* len) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    node = Child(node, static_cast<uint8_t>(text[i]));
    if (node < 0) break;
    int32_t t = nodes_[node].token_idx;
    if (t >= 0 && (parse_special || !tokens_[t].special)) {
      best = t;
      *len = i + 1 - pos;
    }
  }
  return best;
}

namespace {

bool IsSpaceAt(std::string_view text, size_t pos, size_t* cp_len) {
  size_t p = pos;
  uint32_t cp = NextCodepoint(text, &p);
  *cp_len = p - pos;
  return IsWhitespaceCp(cp);
}

}  // namespace

void AddedTokenMatcher::Split(std::string_view text, bool parse_special,
                              std::vector<Piece>* out) const {
  size_t plain_begin = 0, pos = 0;
  while (pos < text.size()) {
    size_t len = 0;
    int32_t t = can_start_[static_cast<uint8_t>(text[pos])]
                    ? MatchAt(text, pos, parse_special, &len)
                    : -1;
    if (t < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[t];
    size_t plain_end = pos;
    if (tok.lstrip) {  // drop whitespace that precedes the token
      while (plain_end > plain_begin) {
        size_t b = plain_end - 1;
        while (b > plain_begin && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
        size_t n;
        if (!IsSpaceAt(text, b, &n)) break;
        plain_end = b;
      }
    }
    if (plain_end > plain_begin) out->push_back({-1, {plain_begin, plain_end}});
    out->push_back({tok.id, {pos, pos + len}});
    pos += len;
    if (tok.rstrip) {
      size_t n;
      while (pos < text.size() && IsSpaceAt(text, pos, &n)) pos += n;
    }
    plain_begin = pos;
  }
  if (text.size() > plain_begin) out->push_back({-1, {plain_begin, text.size()}});
}

}  // namespace kiln::tokenizer
