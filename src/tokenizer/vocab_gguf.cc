// Tokenizer::FromMetadata: a vocabulary from GGUF `tokenizer.ggml.*` keys.
#include <memory>

#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"

namespace kiln::tokenizer {
namespace {

using io::MetaValue;

const MetaValue* Find(const io::Metadata& meta, std::string_view key) {
  auto it = meta.find(key);
  return it == meta.end() ? nullptr : &it->second;
}

StatusOr<const MetaValue*> FindArray(const io::Metadata& meta, std::string_view key,
                                     MetaValue::Type elem, bool required) {
  const MetaValue* v = Find(meta, key);
  if (v == nullptr) {
    if (required) return InvalidArgument("GGUF has no '%.*s'", int(key.size()), key.data());
    return static_cast<const MetaValue*>(nullptr);
  }
  if (v->type != MetaValue::Type::kArray) {
    return InvalidArgument("GGUF '%.*s' is not an array", int(key.size()), key.data());
  }
  for (const MetaValue& e : v->array) {
    bool ok = elem == MetaValue::Type::kString ? e.type == MetaValue::Type::kString
                                               : e.IsNumber();
    if (!ok) return InvalidArgument("GGUF '%.*s' has an element of the wrong type",
                                    int(key.size()), key.data());
  }
  return v;
}

StatusOr<int32_t> OptionalId(const io::Metadata& meta, std::string_view key) {
  const MetaValue* v = Find(meta, key);
  if (v == nullptr) return -1;
  KILN_ASSIGN_OR_RETURN(int64_t id, v->AsInt(key));
  return id >= 0 && id <= INT32_MAX ? static_cast<int32_t>(id) : -1;
}

bool OptionalBool(const io::Metadata& meta, std::string_view key, bool fallback) {
  const MetaValue* v = Find(meta, key);
  if (v == nullptr) return fallback;
  if (v->type == MetaValue::Type::kBool) return v->b;
  return v->IsInteger() ? v->i != 0 : fallback;
}

std::string OptionalString(const io::Metadata& meta, std::string_view key) {
  const MetaValue* v = Find(meta, key);
  return v != nullptr && v->type == MetaValue::Type::kString ? v->s : std::string();
}

Status LoadVocab(const io::Metadata& meta, TokenizerModel* m) {
  KILN_ASSIGN_OR_RETURN(const MetaValue* tokens,
                        FindArray(meta, "tokenizer.ggml.tokens", MetaValue::Type::kString, true));
  KILN_ASSIGN_OR_RETURN(const MetaValue* scores,
                        FindArray(meta, "tokenizer.ggml.scores", MetaValue::Type::kFloat32, false));
  KILN_ASSIGN_OR_RETURN(const MetaValue* types, FindArray(meta, "tokenizer.ggml.token_type",
                                                          MetaValue::Type::kInt32, false));
  const size_t n = tokens->array.size();
  if (n == 0 || n > INT32_MAX) return InvalidArgument("GGUF vocabulary has %zu tokens", n);
  if ((scores && scores->array.size() != n) || (types && types->array.size() != n)) {
    return InvalidArgument("GGUF tokens/scores/token_type lengths differ");
  }
  m->pieces.reserve(n);
  for (const MetaValue& t : tokens->array) m->pieces.push_back(t.s);
  if (scores) {
    m->scores.reserve(n);
    for (const MetaValue& s : scores->array) m->scores.push_back(static_cast<float>(s.f != 0 ? s.f : s.i));
  }
  m->types.assign(n, TokenType::kNormal);
  if (types) {
    for (size_t i = 0; i < n; ++i) {
      int64_t t = types->array[i].i;
      m->types[i] = t >= 1 && t <= 6 ? static_cast<TokenType>(t - 1) : TokenType::kNormal;
    }
  }
  return Status::Ok();
}

Status LoadMerges(const io::Metadata& meta, TokenizerModel* m) {
  KILN_ASSIGN_OR_RETURN(const MetaValue* merges, FindArray(meta, "tokenizer.ggml.merges",
                                                           MetaValue::Type::kString, false));
  if (merges == nullptr) return InvalidArgument("GGUF BPE vocabulary has no merges");
  // Index first: merges are looked up by piece.
  PieceIndex index;
  index.Build(m->pieces, {});
  m->merges.Reserve(merges->array.size());
  std::string joined;
  for (size_t rank = 0; rank < merges->array.size(); ++rank) {
    const std::string& s = merges->array[rank].s;
    size_t sp = s.find(' ', 1);
    if (sp == std::string::npos) return InvalidArgument("GGUF merge %zu '%s' has no space", rank, s.c_str());
    std::string_view a(s.data(), sp), b(s.data() + sp + 1, s.size() - sp - 1);
    joined.assign(a).append(b);
    int32_t ia = index.Find(m->pieces, a), ib = index.Find(m->pieces, b);
    int32_t ij = index.Find(m->pieces, joined);
    if (ia < 0 || ib < 0 || ij < 0) continue;  // unusable
    m->merges.Insert(ia, ib, static_cast<int32_t>(rank), ij);
  }
  return Status::Ok();
}

Status ConfigureKind(const io::Metadata& meta, TokenizerModel* m) {
  std::string model = OptionalString(meta, "tokenizer.ggml.model");
  std::string pre = OptionalString(meta, "tokenizer.ggml.pre");
  if (model == "gpt2") {
    m->kind = VocabKind::kByteBpe;
    KILN_RETURN_IF_ERROR(LoadMerges(meta, m));
    PreTokenizer p = PreTokenizer::kDefault;
    if (!pre.empty()) {
      auto found = PreTokenizerFromGgufName(pre);
      if (!found.ok()) return Unimplemented("GGUF pre-tokenizer '%s' is not supported", pre.c_str());
      p = *found;
    }
    const PreTokenizerSpec& spec = SpecFor(p);
    std::vector<std::string> res(spec.regexes.begin(), spec.regexes.end());
    KILN_ASSIGN_OR_RETURN(m->splitter, RegexSplitter::Create(res));
    m->ignore_merges = spec.ignore_merges;
    m->add_bos = OptionalBool(meta, "tokenizer.ggml.add_bos_token", false);
    m->utf8_rule = InvalidUtf8Rule::kLossy;
  } else if (model == "llama") {
    m->kind = VocabKind::kSentencePieceBpe;
    m->merge_by_score = true;
    m->escape_spaces = true;
    m->byte_fallback = true;
    m->add_space_prefix = OptionalBool(meta, "tokenizer.ggml.add_space_prefix", true);
    m->strip_leading_space = m->add_space_prefix;
    m->add_bos = OptionalBool(meta, "tokenizer.ggml.add_bos_token", true);
    m->utf8_rule = InvalidUtf8Rule::kPerByteToken;
  } else if (model == "bert") {
    m->kind = VocabKind::kWordPiece;
    m->wordpiece.word_prefix = "\xE2\x96\x81";
    m->wordpiece.continuation_prefix = "";
    m->add_bos = OptionalBool(meta, "tokenizer.ggml.add_bos_token", true);
    m->add_eos = OptionalBool(meta, "tokenizer.ggml.add_eos_token", true);
  } else if (model.empty()) {
    return InvalidArgument("GGUF has no tokenizer.ggml.model");
  } else {
    return Unimplemented("GGUF tokenizer model '%s' is not supported", model.c_str());
  }
  if (m->kind != VocabKind::kWordPiece) {
    m->add_eos = OptionalBool(meta, "tokenizer.ggml.add_eos_token", false);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::FromMetadata(const io::Metadata& meta) {
  auto m = std::make_unique<TokenizerModel>();
  KILN_RETURN_IF_ERROR(LoadVocab(meta, m.get()));
  KILN_RETURN_IF_ERROR(ConfigureKind(meta, m.get()));
  KILN_ASSIGN_OR_RETURN(m->bos, OptionalId(meta, "tokenizer.ggml.bos_token_id"));
  KILN_ASSIGN_OR_RETURN(m->eos, OptionalId(meta, "tokenizer.ggml.eos_token_id"));
  KILN_ASSIGN_OR_RETURN(m->eot, OptionalId(meta, "tokenizer.ggml.eot_token_id"));
  KILN_ASSIGN_OR_RETURN(m->unk, OptionalId(meta, "tokenizer.ggml.unknown_token_id"));
  KILN_ASSIGN_OR_RETURN(m->pad, OptionalId(meta, "tokenizer.ggml.padding_token_id"));
  KILN_ASSIGN_OR_RETURN(m->sep, OptionalId(meta, "tokenizer.ggml.seperator_token_id"));
  KILN_ASSIGN_OR_RETURN(m->cls, OptionalId(meta, "tokenizer.ggml.cls_token_id"));
  KILN_ASSIGN_OR_RETURN(int32_t eom, OptionalId(meta, "tokenizer.ggml.eom_token_id"));
  if (m->kind == VocabKind::kWordPiece) {  // BERT: [CLS] text [SEP]
    if (m->bos < 0) m->bos = m->cls;
    if (m->eos < 0) m->eos = m->sep;
  }
  if (m->unk < 0 && m->kind == VocabKind::kSentencePieceBpe) m->unk = 0;
  m->chat_template = OptionalString(meta, "tokenizer.chat_template");
  // Control, unknown and user-defined tokens are found in text before the encoder runs.
  for (size_t i = 0; i < m->pieces.size(); ++i) {
    TokenType t = m->types[i];
    if (t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined) {
      m->added.Add(m->pieces[i], {static_cast<int32_t>(i), t != TokenType::kUserDefined});
    }
  }
  KILN_RETURN_IF_ERROR(FinishModel(m.get()));
  if (m->Valid(eom)) m->eog.push_back(eom);
  return std::shared_ptr<const Tokenizer>(std::make_shared<Tokenizer>(std::move(m)));
}

}  // namespace kiln::tokenizer
