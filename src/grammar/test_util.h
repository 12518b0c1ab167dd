// Helpers shared by the grammar tests: whole-string matching and hand-built vocabularies.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "grammar/compiled_grammar.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"

namespace kiln::grammar::testing {

// A vocabulary of all 256 single bytes (ids 0..255), then `extra` tokens, then one EOG token.
inline std::shared_ptr<const TokenVocab> ByteVocab(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> toks;
  for (int b = 0; b < 256; ++b) toks.push_back(std::string(1, static_cast<char>(b)));
  for (const auto& t : extra) toks.push_back(t);
  toks.push_back("");
  int32_t eog = static_cast<int32_t>(toks.size()) - 1;
  return std::make_shared<const TokenVocab>(std::move(toks), std::vector<int32_t>{eog});
}

// True if the grammar accepts exactly `text` (whole string, then end).
inline bool Matches(const std::shared_ptr<const CompiledGrammar>& cg, const std::string& text) {
  Matcher m(cg);
  return m.AcceptString(text) && m.CanTerminate();
}

// Checks every bit of the mask against AcceptToken on a copy of the state (brute force);
// returns the number of mismatches.
inline int MaskMismatches(Matcher& m, std::vector<uint32_t>* mask_out = nullptr) {
  std::vector<uint32_t> mask(m.BitmaskWords());
  m.FillNextTokenBitmask(mask.data());
  int bad = 0;
  int32_t n = m.compiled().vocab().n_vocab();
  for (int32_t id = 0; id < n; ++id) {
    bool allowed = mask[id >> 5] >> (id & 31) & 1;
    bool ok = m.AcceptToken(id);
    if (ok) m.Rollback(1);
    if (ok != allowed) ++bad;
  }
  if (mask_out) *mask_out = mask;
  return bad;
}

}  // namespace kiln::grammar::testing
