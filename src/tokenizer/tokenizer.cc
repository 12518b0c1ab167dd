// Encode / Decode glue: added-token split, then the vocabulary's encoder per plain segment.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/model.h"

namespace kiln::tokenizer {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// End-of-turn texts, in the order used to pick eot_id when the file names none.
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
    "_<EOT>", "<｜end▁of▁sentence｜>",
};
// Further tokens that end a generation when present.
constexpr std::string_view kEogTexts[] = {"<|eom_id|>", "<|return|>", "<|call|>", "<eos>"};

// Per-call scratch, so that concurrent Encode calls share nothing.
struct EncodeScratch {
  BpeScratch bpe;
  std::vector<Span> words;
  std::string buf;
};

void EmitSymbols(const TokenizerModel& m, std::string_view word, const BpeScratch& s,
                 std::vector<int32_t>* out) {
  bool prev_unk = false;
  for (int32_t i = s.syms.empty() ? -1 : 0; i >= 0; i = s.syms[i].next) {
    const BpeSymbol& sym = s.syms[i];
    if (sym.id >= 0) {
      out->push_back(sym.id);
      prev_unk = false;
      continue;
    }
    for (uint32_t k = 0; k < sym.len; ++k) {
      int32_t b = m.byte_fallback ? m.byte_ids[static_cast<uint8_t>(word[sym.begin + k])] : -1;
      if (b >= 0) {
        out->push_back(b);
        prev_unk = false;
      } else if (m.unk >= 0) {
        if (!(m.fuse_unk && prev_unk)) out->push_back(m.unk);
        prev_unk = true;
        if (!m.byte_fallback) break;  // one <unk> per character
      }
    }
  }
}

void EncodeByteWord(const TokenizerModel& m, std::string_view word, EncodeScratch* st,
                    std::vector<int32_t>* out) {
  if (m.ignore_merges) {
    st->buf.clear();
    const auto& map = ByteToUnicode();
    for (char c : word) st->buf += map[static_cast<uint8_t>(c)];
    int32_t id = m.Find(st->buf);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  auto& syms = st->bpe.syms;
  syms.clear();
  for (size_t i = 0; i < word.size(); ++i) {
    syms.push_back({m.byte_ids[static_cast<uint8_t>(word[i])], static_cast<uint32_t>(i), 1, -1, -1});
  }
  if (syms.size() > 1) MergeByRank(m.merges, &st->bpe);
  else if (!syms.empty()) syms[0].next = -1;
  EmitSymbols(m, word, st->bpe, out);
}

void EncodeSpmWord(const TokenizerModel& m, std::string_view word, EncodeScratch* st,
                   std::vector<int32_t>* out) {
  auto& syms = st->bpe.syms;
  syms.clear();
  for (size_t i = 0; i < word.size();) {
    size_t n = std::min<size_t>(Utf8SeqLen(static_cast<uint8_t>(word[i])), word.size() - i);
    syms.push_back({m.Find(word.substr(i, n)), static_cast<uint32_t>(i), static_cast<uint32_t>(n),
                    -1, -1});
    i += n;
  }
  if (syms.size() <= 1) {
    if (!syms.empty()) syms[0].next = -1;
  } else if (m.merge_by_score) {
    auto lookup = [&m](std::string_view text, float* score) -> int32_t {
      int32_t id = m.Find(text);
      if (id < 0 || m.types[id] != TokenType::kNormal) return -1;
      *score = m.scores.empty() ? 0.0f : m.scores[id];
      return id;
    };
    MergeByScore(word, lookup, &st->bpe);
  } else {
    MergeByRank(m.merges, &st->bpe);
  }
  EmitSymbols(m, word, st->bpe, out);
}

// at_start: the segment begins the input text (for prepend_scheme "first").
Status EncodeSegment(const TokenizerModel& m, std::string_view seg, bool at_start,
                     EncodeScratch* st, std::vector<int32_t>* out) {
  std::string normalized;
  if (m.normal_form != NormalForm::kNone) {
    KILN_ASSIGN_OR_RETURN(normalized, Normalize(seg, m.normal_form));
    seg = normalized;
  }
  switch (m.kind) {
    case VocabKind::kByteBpe: {
      st->words.clear();
      if (m.splitter) {
        m.splitter->Split(seg, {0, seg.size()}, &st->words);
      } else {
        st->words.push_back({0, seg.size()});
      }
      for (const Span& w : st->words) EncodeByteWord(m, seg.substr(w.begin, w.end - w.begin), st, out);
      return Status::Ok();
    }
    case VocabKind::kSentencePieceBpe: {
      std::string text;
      text.reserve(seg.size() + 8);
      if (m.add_space_prefix && (at_start || !m.space_prefix_first_only)) text.append(kMetaspace);
      for (char c : seg) {
        if (c == ' ' && m.escape_spaces) text.append(kMetaspace);
        else text.push_back(c);
      }
      if (!m.split_on_metaspace) {
        EncodeSpmWord(m, text, st, out);
        return Status::Ok();
      }
      size_t begin = 0;
      while (begin < text.size()) {
        size_t next = text.find(kMetaspace, begin + 1);
        if (next == std::string::npos) next = text.size();
        EncodeSpmWord(m, std::string_view(text).substr(begin, next - begin), st, out);
        begin = next;
      }
      return Status::Ok();
    }
    case VocabKind::kWordPiece:
      EncodeWordPiece(m, seg, out);
      return Status::Ok();
  }
  return Status::Ok();
}

// Appends decoded[id]s, turning invalid runs of byte tokens into U+FFFD per byte.
std::string DecodePerByteToken(const TokenizerModel& m, std::span<const int32_t> ids,
                               bool skip_special) {
  std::string out, run;
  size_t run_tokens = 0;
  auto flush = [&] {
    if (run.empty()) return;
    if (IsValidUtf8(run)) {
      out += run;
    } else {
      for (size_t k = 0; k < run_tokens; ++k) out.append("\xEF\xBF\xBD");
    }
    run.clear();
    run_tokens = 0;
  };
  for (int32_t id : ids) {
    if (!m.Valid(id) || (skip_special && m.is_special[id])) continue;
    if (m.types[id] == TokenType::kByte) {
      run += m.decoded[id];
      ++run_tokens;
      continue;
    }
    flush();
    out += m.decoded[id];
  }
  flush();
  return Utf8Lossy(out);
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<TokenizerModel> model) : m_(std::move(model)) {
  KILN_CHECK(m_ != nullptr);
}
Tokenizer::~Tokenizer() = default;

StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                 const EncodeOptions& opts) const {
  if (!IsValidUtf8(text)) return InvalidArgument("text to encode is not valid UTF-8");
  const TokenizerModel& m = *m_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (opts.add_special && m.add_bos && m.bos >= 0) out.push_back(m.bos);
  std::vector<AddedTokenMatcher::Piece> pieces;
  if (m.added.empty()) {
    if (!text.empty()) pieces.push_back({-1, {0, text.size()}});
  } else {
    m.added.Split(text, opts.parse_special, &pieces);
  }
  EncodeScratch st;
  for (const auto& p : pieces) {
    if (p.id >= 0) {
      out.push_back(p.id);
      continue;
    }
    KILN_RETURN_IF_ERROR(EncodeSegment(m, text.substr(p.span.begin, p.span.end - p.span.begin),
                                       p.span.begin == 0, &st, &out));
  }
  if (opts.add_special && m.add_eos && m.eos >= 0) out.push_back(m.eos);
  return out;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  const TokenizerModel& m = *m_;
  if (m.kind == VocabKind::kWordPiece) return DecodeWordPiece(m, ids, skip_special);
  std::string out;
  if (m.utf8_rule == InvalidUtf8Rule::kPerByteToken) {
    out = DecodePerByteToken(m, ids, skip_special);
  } else {
    std::string bytes;
    for (int32_t id : ids) {
      if (!m.Valid(id) || (skip_special && m.is_special[id])) continue;
      bytes += m.decoded[id];
    }
    out = Utf8Lossy(bytes);
  }
  if (m.strip_leading_space && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string_view Tokenizer::TokenText(int32_t id) const {
  return m_->Valid(id) ? std::string_view(m_->pieces[id]) : std::string_view();
}
TokenType Tokenizer::GetTokenType(int32_t id) const {
  return m_->Valid(id) ? m_->types[id] : TokenType::kUnused;
}
std::string_view Tokenizer::TokenBytes(int32_t id, bool skip_special) const {
  if (!m_->Valid(id) || (skip_special && m_->is_special[id])) return {};
  return m_->decoded[id];
}
bool Tokenizer::IsSpecial(int32_t id) const { return m_->Valid(id) && m_->is_special[id]; }
VocabKind Tokenizer::kind() const { return m_->kind; }
int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(m_->pieces.size()); }
int32_t Tokenizer::bos_id() const { return m_->bos; }
int32_t Tokenizer::eos_id() const { return m_->eos; }
int32_t Tokenizer::eot_id() const { return m_->eot; }
int32_t Tokenizer::pad_id() const { return m_->pad; }
int32_t Tokenizer::unk_id() const { return m_->unk; }
bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return std::find(m_->eog.begin(), m_->eog.end(), id) != m_->eog.end();
}
const std::vector<int32_t>& Tokenizer::eog_ids() const { return m_->eog; }
bool Tokenizer::add_bos() const { return m_->add_bos; }
bool Tokenizer::add_eos() const { return m_->add_eos; }
bool Tokenizer::strips_leading_space() const { return m_->strip_leading_space; }
const std::string& Tokenizer::chat_template() const { return m_->chat_template; }
std::string_view Tokenizer::bos_text() const { return TokenText(m_->bos); }
std::string_view Tokenizer::eos_text() const { return TokenText(m_->eos); }

StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::FromSource(const io::TensorSource& src) {
  if (src.format() == io::SourceFormat::kGguf) return FromMetadata(src.metadata());
  const io::MetaValue* dir = src.FindMeta("hf.dir");
  if (dir == nullptr || dir->type != io::MetaValue::Type::kString) {
    return NotFound("model source '%s' has no tokenizer folder", src.path().c_str());
  }
  return FromHfFiles(dir->s);
}

Status FinishModel(TokenizerModel* m) {
  const size_t n = m->pieces.size();
  if (n == 0) return InvalidArgument("tokenizer has an empty vocabulary");
  if (m->types.size() != n) m->types.resize(n, TokenType::kNormal);
  m->not_in_model.resize(n, 0);
  m->index.Build(m->pieces, m->not_in_model);
  // Byte symbols: byte-level BPE maps each byte to a one-character token; SentencePiece uses
  // <0xXX> byte tokens for fallback.
  for (int b = 0; b < 256; ++b) {
    if (m->kind == VocabKind::kByteBpe) {
      m->byte_ids[b] = m->Find(ByteToUnicode()[b]);
    } else {
      m->byte_ids[b] = m->Find(StrFormat("<0x%02X>", b));
    }
  }
  m->decoded.assign(n, std::string());
  m->is_special.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = m->pieces[i];
    TokenType t = m->types[i];
    if (t == TokenType::kControl || t == TokenType::kUnknown) m->is_special[i] = 1;
    std::string& d = m->decoded[i];
    if (m->kind == VocabKind::kByteBpe) {
      size_t pos = 0;
      bool all = true;
      while (pos < p.size() && all) {
        int b = UnicodeToByte(NextCodepoint(p, &pos));
        if (b < 0) all = false;
        else d.push_back(static_cast<char>(b));
      }
      if (!all) d = p;  // not byte-level text (e.g. an added token): the raw text
    } else if (m->kind == VocabKind::kSentencePieceBpe) {
      if (t == TokenType::kByte && p.size() == 6 && p.compare(0, 3, "<0x") == 0) {
        d.push_back(static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
      } else {
        for (size_t k = 0; k < p.size();) {
          if (p.compare(k, 3, kMetaspace) == 0) {
            d.push_back(' ');
            k += 3;
          } else {
            d.push_back(p[k++]);
          }
        }
      }
    } else {
      d = p;
    }
  }
  // End of generation: the ids the file names plus well-known end-of-turn tokens (searched
  // over every piece, added tokens included).
  std::vector<int32_t> eot_found(std::size(kEotTexts), -1), eog_found;
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = m->pieces[i];
    if (p.size() < 5 || p.size() > 40) continue;
    for (size_t k = 0; k < std::size(kEotTexts); ++k) {
      if (p == kEotTexts[k] && eot_found[k] < 0) eot_found[k] = static_cast<int32_t>(i);
    }
    for (std::string_view t : kEogTexts) {
      if (p == t) eog_found.push_back(static_cast<int32_t>(i));
    }
  }
  if (m->eot < 0) {
    for (int32_t id : eot_found) {
      if (id >= 0) {
        m->eot = id;
        break;
      }
    }
  }
  auto add_eog = [m](int32_t id) {
    if (m->Valid(id) && std::find(m->eog.begin(), m->eog.end(), id) == m->eog.end()) {
      m->eog.push_back(id);
    }
  };
  add_eog(m->eos);
  add_eog(m->eot);
  for (int32_t id : eot_found) add_eog(id);
  for (int32_t id : eog_found) add_eog(id);
  for (int32_t* id : {&m->bos, &m->eos, &m->eot, &m->pad, &m->unk, &m->sep, &m->cls}) {
    if (!m->Valid(*id)) *id = -1;
  }
  return Status::Ok();
}

}  // namespace kiln::tokenizer
