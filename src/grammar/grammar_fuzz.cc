// libFuzzer target: GBNF text → Grammar (must never crash, only return errors), then a short
// constrained walk over a byte vocabulary checking that every token the mask allows is accepted.
// Built with -DKILN_FUZZ=ON under clang (scripts/fuzz.sh).
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include "grammar/compiled_grammar.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"

namespace {

using namespace kiln::grammar;

std::shared_ptr<const TokenVocab> Vocab() {
  static const std::shared_ptr<const TokenVocab> vocab = [] {
    std::vector<std::string> toks;
    for (int b = 0; b < 256; ++b) toks.push_back(std::string(1, static_cast<char>(b)));
    for (const char* t : {"ab", "abc", "\"", "\":", "{\"", "true", "null", "12", "\xC3\xA9", " "}) {
      toks.push_back(t);
    }
    toks.push_back("");  // end of generation
    const int32_t eog = static_cast<int32_t>(toks.size()) - 1;
    return std::make_shared<const TokenVocab>(std::move(toks), std::vector<int32_t>{eog});
  }();
  return vocab;
}

// A deterministic walk: at each step the allowed token chosen by `h` must be accepted.
void Walk(const Grammar& g, uint64_t h) {
  auto cg = CompiledGrammar::Compile(g, Vocab());
  Matcher m(cg, 4);
  std::vector<uint32_t> mask(m.BitmaskWords());
  for (int step = 0; step < 12 && !m.IsTerminated(); ++step) {
    m.FillNextTokenBitmask(mask.data());
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < Vocab()->n_vocab(); ++id) {
      if ((mask[id >> 5] >> (id & 31)) & 1u) allowed.push_back(id);
    }
    if (allowed.empty()) break;  // dead end, or the work bounds were exceeded (Error())
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    const int32_t id = allowed[(h >> 33) % allowed.size()];
    if (!m.AcceptToken(id)) {
      if (!m.Error().empty()) break;  // work bounds exceeded while accepting: fails closed
      std::fprintf(stderr, "mask allowed token %d but AcceptToken refused it\n", id);
      __builtin_trap();
    }
    if (step % 5 == 4 && m.NumRollbackable() > 0) m.Rollback(1);
  }
  (void)m.FindJumpForwardString();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto g = Grammar::FromGbnf(text);
  if (!g.ok()) return 0;
  (void)g->ToString();
  // The server's compile-time check (bounded); the walk runs either way, so the matcher's own
  // run-time bounds are exercised on grammars the check lets through and on those it rejects.
  (void)CheckGrammarWork(*g);
  // Walks are cheap for ordinary grammars; skip huge ones (repetition-expanded) to keep the
  // fuzzer exploring the parser rather than compiling one grammar.
  if (g->elements().size() <= 20000) Walk(*g, size);
  return 0;
}
