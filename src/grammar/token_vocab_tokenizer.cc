// TokenVocab::FromTokenizer: the only part of kiln_grammar that needs tokenizer/ (kept apart so
// the fuzz targets can build the grammar engine without it).
#include "grammar/token_vocab.h"
#include "tokenizer/tokenizer.h"

namespace kiln::grammar {

std::shared_ptr<const TokenVocab> TokenVocab::FromTokenizer(const tokenizer::Tokenizer& tok) {
  std::vector<std::string> bytes(tok.n_vocab());
  std::vector<int32_t> eog;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    if (tok.IsEndOfGeneration(id)) {
      eog.push_back(id);
    } else if (!tok.IsSpecial(id)) {
      bytes[id] = std::string(tok.TokenBytes(id, /*skip_special=*/false));
    }
  }
  return std::make_shared<const TokenVocab>(std::move(bytes), std::move(eog));
}

}  // namespace kiln::grammar
