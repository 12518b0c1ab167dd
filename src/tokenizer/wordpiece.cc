// WordPiece (BERT): BertNormalizer (clean text, CJK spacing, accent stripping, lowercasing),
// BertPreTokenizer (whitespace and punctuation split), then greedy longest-match-first.
#include <string>

#include "tokenizer/model.h"

namespace kiln::tokenizer {
namespace {

// Normalizes `text` and splits it into words (each a separate string).
std::vector<std::string> NormalizeAndSplit(const WordPieceConfig& wp, std::string_view text) {
  std::string cleaned;
  cleaned.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp = NextCodepoint(text, &pos);
    if (wp.clean_text) {
      if (cp == 0 || cp == 0xFFFD || IsControlCp(cp)) continue;
      if (IsWhitespaceCp(cp)) cp = ' ';
    }
    if (wp.chinese_chars && IsCjkCp(cp)) {
      cleaned.push_back(' ');
      AppendUtf8(cp, &cleaned);
      cleaned.push_back(' ');
      continue;
    }
    AppendUtf8(cp, &cleaned);
  }
  std::string norm = cleaned;
  if (wp.strip_accents) {
    auto nfd = Normalize(cleaned, NormalForm::kNfd);
    norm.clear();
    if (nfd.ok()) {
      for (size_t pos = 0; pos < nfd->size();) {
        uint32_t cp = NextCodepoint(*nfd, &pos);
        if (!IsMarkNonspacing(cp)) AppendUtf8(cp, &norm);
      }
    }
  }
  if (wp.lowercase) norm = ToLower(norm);
  std::vector<std::string> words;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) words.push_back(std::move(cur));
    cur.clear();
  };
  for (size_t pos = 0; pos < norm.size();) {
    size_t start = pos;
    uint32_t cp = NextCodepoint(norm, &pos);
    if (IsWhitespaceCp(cp)) {
      flush();
    } else if (IsPunctuationCp(cp)) {
      flush();
      words.emplace_back(norm.substr(start, pos - start));
    } else {
      cur.append(norm, start, pos - start);
    }
  }
  flush();
  return words;
}

}  // namespace

void EncodeWordPiece(const TokenizerModel& m, std::string_view text, std::vector<int32_t>* out) {
  const WordPieceConfig& wp = m.wordpiece;
  std::string key;
  std::vector<int32_t> pieces;
  for (const std::string& word : NormalizeAndSplit(wp, text)) {
    size_t n_chars = 0;
    for (char c : word) n_chars += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
    bool bad = n_chars > wp.max_chars_per_word;
    pieces.clear();
    for (size_t start = 0; start < word.size() && !bad;) {
      int32_t best = -1;
      size_t best_end = start;
      for (size_t end = word.size(); end > start;) {
        key.assign(start == 0 ? wp.word_prefix : wp.continuation_prefix);
        key.append(word, start, end - start);
        int32_t id = m.Find(key);
        if (id >= 0) {
          best = id;
          best_end = end;
          break;
        }
        do --end; while (end > start && (static_cast<uint8_t>(word[end]) & 0xC0) == 0x80);
      }
      if (best < 0) bad = true;
      pieces.push_back(best);
      start = best_end;
    }
    if (bad) {
      if (m.unk >= 0) out->push_back(m.unk);
    } else {
      out->insert(out->end(), pieces.begin(), pieces.end());
    }
  }
}

namespace {

// Hugging Face's WordPiece decoder "cleanup": applied to each token with its leading space.
void Cleanup(std::string* t) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    for (size_t p = t->find(from); p != std::string::npos; p = t->find(from, p + to.size())) {
      t->replace(p, from.size(), to);
    }
  }
}

}  // namespace

std::string DecodeWordPiece(const TokenizerModel& m, std::span<const int32_t> ids,
                            bool skip_special) {
  const WordPieceConfig& wp = m.wordpiece;
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    if (!m.Valid(id) || (skip_special && m.is_special[id])) continue;
    std::string_view p = m.pieces[id];
    if (!wp.word_prefix.empty()) {  // GGUF form: "▁word", "piece"
      if (p.substr(0, wp.word_prefix.size()) == wp.word_prefix) {
        if (!first) out.push_back(' ');
        out.append(p.substr(wp.word_prefix.size()));
      } else {
        if (!first && m.is_special[id]) out.push_back(' ');
        out.append(p);
      }
    } else {  // tokenizer.json form: "word", "##piece"
      const std::string& cp = wp.continuation_prefix;
      std::string piece;
      if (!first && !cp.empty() && p.substr(0, cp.size()) == cp) {
        piece = p.substr(cp.size());
      } else {
        if (!first) piece.push_back(' ');
        piece.append(p);
      }
      Cleanup(&piece);
      out += piece;
    }
    first = false;
  }
  return out;
}

}  // namespace kiln::tokenizer
