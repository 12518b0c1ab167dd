// TokenVocab: what the grammar engine needs to know about a vocabulary — the exact bytes each
// token adds to the output, and which ids end generation — plus a byte trie over the tokens
// (built once per vocabulary, shared by every grammar compiled against it).
// Tokens that can never be produced under a grammar (special/control tokens that do not end
// generation, tokens with no bytes) get empty bytes and are never allowed by a mask.
// Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::tokenizer {
class Tokenizer;
}

namespace kiln::grammar {

class TokenVocab {
 public:
  // token_bytes.size() is the vocabulary size; eog_ids are allowed exactly when the grammar can end.
  TokenVocab(std::vector<std::string> token_bytes, std::vector<int32_t> eog_ids);
  static std::shared_ptr<const TokenVocab> FromTokenizer(const tokenizer::Tokenizer& tok);

  int32_t n_vocab() const { return static_cast<int32_t>(token_bytes_.size()); }
  const std::string& token_bytes(int32_t id) const { return token_bytes_[id]; }
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }
  bool IsEog(int32_t id) const { return id >= 0 && id < n_vocab() && is_eog_[id]; }

  // Trie nodes in depth-first preorder; node 0 is the root (no byte). Node i's subtree is
  // [i, subtree_end); tokens whose bytes end exactly at node i are
  // trie_tokens()[tok_begin, tok_end).
  struct TrieNode {
    uint8_t byte;
    uint16_t depth;
    uint32_t subtree_end;
    uint32_t tok_begin, tok_end;
  };
  const std::vector<TrieNode>& trie() const { return trie_; }
  const std::vector<int32_t>& trie_tokens() const { return trie_tokens_; }
  // Rank of each token in byte-lexicographic order (the order of trie_tokens()); -1 if unused.
  int32_t sorted_rank(int32_t id) const { return rank_[id]; }
  size_t max_token_bytes() const { return max_token_bytes_; }

 private:
  void BuildTrie();

  std::vector<std::string> token_bytes_;
  std::vector<int32_t> eog_ids_;
  std::vector<uint8_t> is_eog_;
  std::vector<TrieNode> trie_;
  std::vector<int32_t> trie_tokens_;
  std::vector<int32_t> rank_;
  size_t max_token_bytes_ = 0;
};

}  // namespace kiln::grammar
