#include "tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "tokenizer/unicode.h"

namespace kiln::tokenizer {
namespace {

// Shared regexes (facts from the models' tokenizer.json files, as adapted by llama.cpp for
// engines without case-insensitive groups).
constexpr std::string_view kGpt2Re =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr std::string_view kLlama3Re =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Re =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kCjkRe = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";
constexpr std::string_view kPoroRe = " ?[^(\\s|.,!?…。，、।۔،)]+";
constexpr std::string_view kTekkenRe =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kGpt4oRe =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kDeepseek3Re =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Cased letters (Unicode LC), as code points: the literal form is prone to normalization.
constexpr std::string_view kDeepseekLlmLetters =
    "\\s?["
    "\\x{41}-\\x{5A}\\x{61}-\\x{7A}\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}"
    "\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}"
    "\\x{370}-\\x{373}\\x{376}-\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"
    "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}"
    "\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"
    "\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
    "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
    "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
    "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}-\\x{2184}\\x{2C00}-\\x{2C7B}"
    "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}-\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
    "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
    "]+";

// One row per pre-tokenizer; GGUF names from llama.cpp's convert_hf_to_gguf.py.
const std::vector<PreTokenizerSpec>& Table() {
  static const std::vector<PreTokenizerSpec> table = {
      {PreTokenizer::kDefault, {"default"},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2Re, "\\p{N}+", "[0-9][0-9][0-9]"}, false},
      {PreTokenizer::kLlama3, {"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe",
                               "chatglm-bpe", "pixtral", "bailing"},
       {kLlama3Re}, true},
      {PreTokenizer::kDeepseekLlm, {"deepseek-llm"},
       {"[\r\n]", kDeepseekLlmLetters, "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$", kCjkRe, "\\p{N}+"},
       false},
      {PreTokenizer::kDeepseekCoder, {"deepseek-coder"},
       {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkRe, "\\p{N}"}, false},
      {PreTokenizer::kDeepseek3, {"deepseek-v3", "hunyuan-dense"},
       {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+", kDeepseek3Re}, false},
      {PreTokenizer::kFalcon, {"falcon"},
       {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2Re, "[0-9][0-9][0-9]"}, false},
      {PreTokenizer::kStarcoder, {"starcoder", "refact", "command-r", "smollm", "codeshell",
                                  "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2Re}, false},
      {PreTokenizer::kGpt2, {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en",
                             "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe", "mpt",
                             "olmo", "jais", "trillion", "granite-docling"},
       {kGpt2Re}, false},
      {PreTokenizer::kQwen2, {"qwen2", "stablelm2", "hunyuan", "grok-2", "megrez"},
       {kQwen2Re}, false},
      {PreTokenizer::kPoro, {"poro-chat", "bloom", "gpt3-finnish"}, {kPoroRe}, false},
      {PreTokenizer::kViking, {"viking"}, {kPoroRe, "\\p{N}"}, false},
      {PreTokenizer::kTekken, {"tekken"}, {kTekkenRe}, false},
      {PreTokenizer::kGpt4o, {"gpt-4o", "llama4", "minimax-m2"}, {kGpt4oRe}, false},
      {PreTokenizer::kSeedCoder, {"seed-coder"},
       {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
        "\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       false},
      {PreTokenizer::kBailingMoe, {"bailingmoe", "llada-moe"},
       {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
        " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
       false},
      {PreTokenizer::kChameleon, {"chameleon"},
       {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )",
        "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", kGpt2Re},
       false},
      {PreTokenizer::kSuperBpe, {"superbpe"}, {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}, false},
      {PreTokenizer::kNone, {}, {}, false},
  };
  return table;
}

constexpr std::string_view kWsInClass = "\\t-\\r\\x{20}\\x{85}\\p{Z}";

size_t Utf8Step(std::string_view text, size_t i) {
  return std::min<size_t>(Utf8SeqLen(static_cast<uint8_t>(text[i])), text.size() - i);
}

}  // namespace

const PreTokenizerSpec& SpecFor(PreTokenizer p) {
  for (const auto& row : Table()) {
    if (row.id == p) return row;
  }
  KILN_CHECK(false) << "no pre-tokenizer row for " << static_cast<int>(p);
  return Table().back();
}

StatusOr<PreTokenizer> PreTokenizerFromGgufName(std::string_view name) {
  for (const auto& row : Table()) {
    for (std::string_view n : row.gguf_names) {
      if (n == name) return row.id;
    }
  }
  return NotFound("unknown pre-tokenizer '%.*s'", static_cast<int>(name.size()), name.data());
}

std::string RewriteWhitespaceClasses(std::string_view re) {
  std::string out;
  out.reserve(re.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < re.size(); ++i) {
    char c = re[i];
    if (c == '\\' && i + 1 < re.size()) {
      char e = re[i + 1];
      ++i;
      if (e == 's') {
        if (in_class) {
          out.append(kWsInClass);
        } else {
          out.append("[").append(kWsInClass).append("]");
        }
      } else if (e == 'S' && !in_class) {
        out.append("[^").append(kWsInClass).append("]");
      } else {
        out.push_back('\\');
        out.push_back(e);
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < re.size() && re[i + 1] == '^') out.push_back(re[++i]);
      if (i + 1 < re.size() && re[i + 1] == ']') out.push_back(re[++i]);
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

struct RegexSplitter::Impl {
  std::vector<pcre2_code*> codes;
  ~Impl() {
    for (pcre2_code* c : codes) pcre2_code_free(c);
  }
};

RegexSplitter::~RegexSplitter() = default;

StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(
    const std::vector<std::string>& regexes) {
  std::unique_ptr<RegexSplitter> s(new RegexSplitter());
  s->impl_ = std::make_unique<Impl>();
  for (const std::string& raw : regexes) {
    std::string re = RewriteWhitespaceClasses(raw);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return InvalidArgument("pre-tokenizer regex '%s' at %zu: %s", raw.c_str(),
                             static_cast<size_t>(err_off), reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
    s->impl_->codes.push_back(code);
  }
  return s;
}

namespace {

// Runs one regex over text[in]; matches and the gaps between them become words.
void SplitOne(pcre2_code* code, pcre2_match_data* md, pcre2_match_context* mctx,
              std::string_view text, Span in, std::vector<Span>* out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + in.begin);
  const size_t len = in.end - in.begin;
  size_t pos = 0, last = 0;
  while (pos < len) {
    int rc = pcre2_match(code, subject, len, pos, PCRE2_NO_UTF_CHECK, md, mctx);
    if (rc < 0) break;  // no match (or a resource limit: the rest stays one word)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t mb = ov[0], me = ov[1];
    if (me == mb) {  // empty match: split here, step over one character
      if (mb > last) out->push_back({in.begin + last, in.begin + mb});
      last = mb;
      pos = mb + Utf8Step(text, in.begin + mb);
      continue;
    }
    if (mb > last) out->push_back({in.begin + last, in.begin + mb});
    out->push_back({in.begin + mb, in.begin + me});
    last = pos = me;
  }
  if (len > last) out->push_back({in.begin + last, in.end});
}

}  // namespace

void RegexSplitter::Split(std::string_view text, Span in, std::vector<Span>* out) const {
  if (impl_->codes.empty()) {
    if (in.end > in.begin) out->push_back(in);
    return;
  }
  pcre2_match_context* mctx = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  std::vector<Span> cur{in}, next;
  for (size_t k = 0; k < impl_->codes.size(); ++k) {
    next.clear();
    for (const Span& s : cur) SplitOne(impl_->codes[k], md, mctx, text, s, &next);
    cur.swap(next);
  }
  out->insert(out->end(), cur.begin(), cur.end());
  pcre2_match_data_free(md);
  pcre2_jit_stack_free(jit_stack);
  pcre2_match_context_free(mctx);
}

}  // namespace kiln::tokenizer
