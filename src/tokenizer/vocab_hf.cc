// Tokenizer::FromHfFiles: a vocabulary from a Hugging Face tokenizer.json, plus
// tokenizer_config.json (BOS/EOS, add_bos_token, chat_template) when it sits beside it.
// Components we do not implement are refused with Unimplemented, never silently ignored.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"

namespace kiln::tokenizer {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::string_view kMetaspace = "\xE2\x96\x81";
// The GPT-2 regex that a ByteLevel pre-tokenizer with use_regex applies.
constexpr std::string_view kByteLevelRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

StatusOr<json> ReadJson(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot open '%s'", path.c_str());
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("'%s' is not valid JSON", path.c_str());
  return j;
}

// The member, or a null value: unlike json::value(), never copies.
const json& Get(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
bool Bool(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// "abc" → a regex matching it literally.
std::string QuoteRegex(const std::string& s) { return "\\Q" + s + "\\E"; }

struct Loader {
  TokenizerModel* m;
  std::vector<std::string> regexes;
  bool byte_level = false;

  Status Normalizer(const json& n) {
    if (n.is_null()) return Status::Ok();
    std::string type = Str(n, "type");
    if (type == "Sequence") {
      for (const json& c : Get(n, "normalizers")) KILN_RETURN_IF_ERROR(Normalizer(c));
    } else if (type == "NFC") {
      m->normal_form = NormalForm::kNfc;
    } else if (type == "NFD") {
      m->normal_form = NormalForm::kNfd;
    } else if (type == "NFKC") {
      m->normal_form = NormalForm::kNfkc;
    } else if (type == "NFKD") {
      m->normal_form = NormalForm::kNfkd;
    } else if (type == "Prepend" && Str(n, "prepend") == kMetaspace) {
      m->add_space_prefix = true;
    } else if (type == "Replace" && n.contains("pattern") && Str(n["pattern"], "String") == " " &&
               Str(n, "content") == kMetaspace) {
      m->escape_spaces = true;
    } else if (type == "BertNormalizer") {
      auto& wp = m->wordpiece;
      wp.clean_text = Bool(n, "clean_text", true);
      wp.chinese_chars = Bool(n, "handle_chinese_chars", true);
      wp.lowercase = Bool(n, "lowercase", true);
      wp.strip_accents = Bool(n, "strip_accents", wp.lowercase);  // null: follows lowercase
    } else {
      return Unimplemented("tokenizer.json normalizer '%s' is not supported", n.dump().c_str());
    }
    return Status::Ok();
  }

  Status PreTokenizerStep(const json& p) {
    if (p.is_null()) return Status::Ok();
    std::string type = Str(p, "type");
    if (type == "Sequence") {
      for (const json& c : Get(p, "pretokenizers")) {
        KILN_RETURN_IF_ERROR(PreTokenizerStep(c));
      }
    } else if (type == "ByteLevel") {
      byte_level = true;
      if (Bool(p, "add_prefix_space", false)) {
        return Unimplemented("ByteLevel add_prefix_space is not supported");
      }
      if (Bool(p, "use_regex", true)) regexes.emplace_back(kByteLevelRegex);
    } else if (type == "Split") {
      const json& pat = Get(p, "pattern");
      std::string re = pat.contains("Regex") ? Str(pat, "Regex") : QuoteRegex(Str(pat, "String"));
      std::string behavior = Str(p, "behavior");
      if (Str(pat, "String") == " " && m->escape_spaces) return Status::Ok();  // no spaces left
      if (behavior != "Isolated" || Bool(p, "invert", false)) {
        return Unimplemented("Split behavior '%s' is not supported", behavior.c_str());
      }
      regexes.push_back(re);
    } else if (type == "Digits") {
      regexes.emplace_back(Bool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    } else if (type == "Metaspace") {
      m->escape_spaces = true;
      std::string scheme = p.value("prepend_scheme", std::string("always"));
      if (Bool(p, "add_prefix_space", true) && scheme != "never") m->add_space_prefix = true;
      m->space_prefix_first_only = scheme == "first";
      m->split_on_metaspace = Bool(p, "split", true);
    } else if (type == "BertPreTokenizer" || type == "Whitespace" || type == "WhitespaceSplit") {
      if (m->kind != VocabKind::kWordPiece) {
        return Unimplemented("pre-tokenizer '%s' outside WordPiece", type.c_str());
      }
    } else {
      return Unimplemented("tokenizer.json pre_tokenizer '%s' is not supported", type.c_str());
    }
    return Status::Ok();
  }

  void Decoder(const json& d) {
    if (d.is_null()) return;
    std::string type = Str(d, "type");
    if (type == "Sequence") {
      for (const json& c : Get(d, "decoders")) Decoder(c);
    } else if (type == "Strip") {
      if (d.value("start", 0) > 0 && Str(d, "content") == " ") m->strip_leading_space = true;
    } else if (type == "Metaspace") {
      m->strip_leading_space = d.value("prepend_scheme", std::string("always")) != "never";
    } else if (type == "ByteLevel") {
      byte_level = true;
    }
  }

  Status Model(const json& model) {
    const json& vocab = Get(model, "vocab");
    if (!vocab.is_object()) return InvalidArgument("tokenizer.json model.vocab is not an object");
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer()) return InvalidArgument("vocab id is not an integer");
      int64_t id = it.value().get<int64_t>();
      if (id < 0 || id > 16'000'000) return InvalidArgument("vocab id %lld out of range", (long long)id);
      if (static_cast<size_t>(id) >= m->pieces.size()) {
        m->pieces.resize(id + 1);
        m->not_in_model.resize(id + 1, 1);
      }
      m->pieces[id] = it.key();
      m->not_in_model[id] = 0;
    }
    m->types.assign(m->pieces.size(), TokenType::kNormal);
    for (size_t i = 0; i < m->pieces.size(); ++i) {
      if (m->not_in_model[i]) m->types[i] = TokenType::kUnused;
    }
    return Status::Ok();
  }

  Status Merges(const json& model) {
    const json& merges = Get(model, "merges");
    PieceIndex index;
    index.Build(m->pieces, m->not_in_model);
    m->merges.Reserve(merges.size());
    std::string a, b;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const json& mg = merges[rank];
      if (mg.is_string()) {
        const std::string& s = mg.get_ref<const std::string&>();
        size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) return InvalidArgument("merge '%s' has no space", s.c_str());
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else {
        return InvalidArgument("merge %zu is neither \"a b\" nor [a, b]", rank);
      }
      int32_t ia = index.Find(m->pieces, a), ib = index.Find(m->pieces, b);
      int32_t ij = index.Find(m->pieces, a + b);
      if (ia < 0 || ib < 0 || ij < 0) continue;
      m->merges.Insert(ia, ib, static_cast<int32_t>(rank), ij);
    }
    return Status::Ok();
  }

  Status AddedTokens(const json& added) {
    for (const json& t : added) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer()) {
        return InvalidArgument("added token without an integer id");
      }
      int64_t id = t["id"].get<int64_t>();
      if (id < 0 || id > 16'000'000) return InvalidArgument("added token id out of range");
      std::string content = Str(t, "content");
      if (static_cast<size_t>(id) >= m->pieces.size()) {
        m->pieces.resize(id + 1);
        m->types.resize(id + 1, TokenType::kUnused);
        m->not_in_model.resize(id + 1, 1);
      }
      bool special = Bool(t, "special", false);
      if (m->not_in_model[id]) m->pieces[id] = content;
      m->types[id] = special ? TokenType::kControl : TokenType::kUserDefined;
      m->added.Add(content, {static_cast<int32_t>(id), special, Bool(t, "lstrip", false),
                             Bool(t, "rstrip", false)});
    }
    return Status::Ok();
  }

  int32_t IdOf(const std::string& text) const {
    if (text.empty()) return -1;
    for (size_t i = 0; i < m->pieces.size(); ++i) {
      if (m->pieces[i] == text) return static_cast<int32_t>(i);
    }
    return -1;
  }

  void PostProcessor(const json& p) {
    if (p.is_null()) return;
    std::string type = Str(p, "type");
    if (type == "TemplateProcessing") {
      const json& single = Get(p, "single");
      const json& specials = Get(p, "special_tokens");
      auto special_id = [&](const json& item) -> int32_t {
        if (!item.contains("SpecialToken")) return -1;
        std::string name = Str(item["SpecialToken"], "id");
        if (specials.contains(name) && specials[name].contains("ids") &&
            !specials[name]["ids"].empty() && specials[name]["ids"][0].is_number_integer()) {
          return specials[name]["ids"][0].get<int32_t>();
        }
        return IdOf(name);
      };
      if (!single.empty()) {
        int32_t first = special_id(single.front()), last = special_id(single.back());
        if (first >= 0) {
          m->add_bos = true;
          m->bos = first;
        }
        if (last >= 0 && single.size() > 1) {
          m->add_eos = true;
          m->eos = last;
        }
      }
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      m->add_bos = m->add_eos = true;
      if (p.contains("cls") && p["cls"].size() == 2) m->bos = m->cls = p["cls"][1].get<int32_t>();
      if (p.contains("sep") && p["sep"].size() == 2) m->eos = m->sep = p["sep"][1].get<int32_t>();
    }
  }
};

std::string TokenContent(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return Str(*it, "content");
  return {};
}

void ApplyConfig(const json& cfg, Loader* ld) {
  TokenizerModel* m = ld->m;
  bool has_template = m->add_bos || m->add_eos;
  std::string bos = TokenContent(cfg, "bos_token"), eos = TokenContent(cfg, "eos_token");
  std::string pad = TokenContent(cfg, "pad_token"), unk = TokenContent(cfg, "unk_token");
  if (m->bos < 0 && !bos.empty()) m->bos = ld->IdOf(bos);
  if (!eos.empty()) {  // the chat end token (e.g. <end_of_turn>) is what the config names
    int32_t id = ld->IdOf(eos);
    if (id >= 0 && !m->add_eos) m->eos = id;
  }
  if (!pad.empty()) m->pad = ld->IdOf(pad);
  if (!unk.empty() && m->unk < 0) m->unk = ld->IdOf(unk);
  if (!has_template) {
    m->add_bos = Bool(cfg, "add_bos_token", false) && m->bos >= 0;
    m->add_eos = Bool(cfg, "add_eos_token", false) && m->eos >= 0;
  }
  auto ct = cfg.find("chat_template");
  if (ct != cfg.end() && ct->is_string()) {
    m->chat_template = ct->get<std::string>();
  } else if (ct != cfg.end() && ct->is_array()) {
    for (const json& e : *ct) {
      if (e.is_object() && Str(e, "name") == "default") m->chat_template = Str(e, "template");
    }
    if (m->chat_template.empty() && !ct->empty() && ct->at(0).is_object()) {
      m->chat_template = Str(ct->at(0), "template");
    }
  }
}

Status Load(const json& j, const fs::path& dir, TokenizerModel* m) {
  Loader ld{m, {}, false};
  const json& model = Get(j, "model");
  std::string type = Str(model, "type");
  if (type.empty() && model.contains("merges")) type = "BPE";
  if (type == "WordPiece") {
    m->kind = VocabKind::kWordPiece;
    const json& prefix = Get(model, "continuing_subword_prefix");
    m->wordpiece.continuation_prefix = prefix.is_string() ? prefix.get<std::string>() : "##";
    const json& max_chars = Get(model, "max_input_chars_per_word");
    if (max_chars.is_number_unsigned()) m->wordpiece.max_chars_per_word = max_chars.get<size_t>();
  } else if (type != "BPE") {
    return Unimplemented("tokenizer.json model type '%s' is not supported", type.c_str());
  }
  KILN_RETURN_IF_ERROR(ld.Model(model));
  KILN_RETURN_IF_ERROR(ld.Normalizer(Get(j, "normalizer")));
  KILN_RETURN_IF_ERROR(ld.PreTokenizerStep(Get(j, "pre_tokenizer")));
  ld.Decoder(Get(j, "decoder"));
  if (type == "BPE") {
    m->kind = ld.byte_level ? VocabKind::kByteBpe : VocabKind::kSentencePieceBpe;
    KILN_RETURN_IF_ERROR(ld.Merges(model));
    m->ignore_merges = Bool(model, "ignore_merges", false);
    m->byte_fallback = Bool(model, "byte_fallback", false);
    m->fuse_unk = Bool(model, "fuse_unk", false);
    if (!Str(model, "continuing_subword_prefix").empty() ||
        !Str(model, "end_of_word_suffix").empty()) {
      return Unimplemented("BPE continuing_subword_prefix / end_of_word_suffix");
    }
    if (m->kind == VocabKind::kByteBpe) {
      KILN_ASSIGN_OR_RETURN(m->splitter, RegexSplitter::Create(ld.regexes));
      m->utf8_rule = InvalidUtf8Rule::kLossy;
    } else {
      if (!ld.regexes.empty()) return Unimplemented("regex Split with a SentencePiece vocabulary");
      m->utf8_rule = InvalidUtf8Rule::kPerByteToken;
      if (m->byte_fallback) {
        for (size_t i = 0; i < m->pieces.size(); ++i) {
          const std::string& p = m->pieces[i];
          if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') m->types[i] = TokenType::kByte;
        }
      }
    }
  }
  std::string unk = Str(model, "unk_token");
  if (!unk.empty()) m->unk = ld.IdOf(unk);
  if (m->kind == VocabKind::kWordPiece && m->unk < 0) m->unk = ld.IdOf(Str(model, "unk_token"));
  KILN_RETURN_IF_ERROR(ld.AddedTokens(Get(j, "added_tokens")));
  if (m->unk >= 0) m->types[m->unk] = TokenType::kUnknown;
  ld.PostProcessor(Get(j, "post_processor"));
  fs::path cfg_path = dir / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    KILN_ASSIGN_OR_RETURN(json cfg, ReadJson(cfg_path));
    if (cfg.is_object()) ApplyConfig(cfg, &ld);
  }
  if (m->chat_template.empty() && fs::exists(dir / "chat_template.jinja")) {
    std::ifstream f(dir / "chat_template.jinja", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    m->chat_template = ss.str();
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::FromHfFiles(const std::string& dir_or_json) {
  fs::path path(dir_or_json);
  std::error_code ec;
  if (fs::is_directory(path, ec)) path /= "tokenizer.json";
  KILN_ASSIGN_OR_RETURN(json j, ReadJson(path));
  if (!j.is_object()) return InvalidArgument("'%s' is not a JSON object", path.c_str());
  auto m = std::make_unique<TokenizerModel>();
  Status st;
  try {
    st = Load(j, path.parent_path(), m.get());
  } catch (const std::exception& e) {  // nlohmann throws on a value of the wrong JSON type
    st = InvalidArgument("malformed tokenizer.json: %s", e.what());
  }
  if (!st.ok()) return st.WithContext(path.string());
  KILN_RETURN_IF_ERROR(FinishModel(m.get()));
  // The config can name an EOS the post-processor does not add (e.g. <end_of_turn>).
  return std::shared_ptr<const Tokenizer>(std::make_shared<Tokenizer>(std::move(m)));
}

}  // namespace kiln::tokenizer
