#include "grammar/token_vocab.h"

#include <algorithm>
#include <numeric>

#include "base/check.h"

namespace kiln::grammar {

TokenVocab::TokenVocab(std::vector<std::string> token_bytes, std::vector<int32_t> eog_ids)
    : token_bytes_(std::move(token_bytes)), eog_ids_(std::move(eog_ids)) {
  is_eog_.assign(token_bytes_.size(), 0);
  for (int32_t id : eog_ids_) {
    KILN_CHECK(id >= 0 && id < n_vocab()) << "eog id " << id << " out of range";
    is_eog_[id] = 1;
    token_bytes_[id].clear();  // an end-of-generation token never adds text
  }
  BuildTrie();
}

void TokenVocab::BuildTrie() {
  std::vector<int32_t> order;
  for (int32_t id = 0; id < n_vocab(); ++id) {
    if (!token_bytes_[id].empty()) order.push_back(id);
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return token_bytes_[a] != token_bytes_[b] ? token_bytes_[a] < token_bytes_[b] : a < b;
  });
  rank_.assign(token_bytes_.size(), -1);
  trie_.clear();
  trie_tokens_.clear();
  trie_.push_back({0, 0, 0, 0, 0});
  std::vector<uint32_t> path = {0};  // node index per depth
  const std::string* prev = nullptr;
  auto close = [&](uint32_t node) { trie_[node].subtree_end = static_cast<uint32_t>(trie_.size()); };
  for (int32_t id : order) {
    const std::string& s = token_bytes_[id];
    max_token_bytes_ = std::max(max_token_bytes_, s.size());
    size_t lcp = 0;
    if (prev) {
      while (lcp < s.size() && lcp < prev->size() && s[lcp] == (*prev)[lcp]) ++lcp;
    }
    while (path.size() > lcp + 1) {
      close(path.back());
      path.pop_back();
    }
    for (size_t d = lcp; d < s.size(); ++d) {
      path.push_back(static_cast<uint32_t>(trie_.size()));
      auto tb = static_cast<uint32_t>(trie_tokens_.size());
      trie_.push_back({static_cast<uint8_t>(s[d]), static_cast<uint16_t>(std::min<size_t>(d + 1, 65535)), 0, tb, tb});
    }
    TrieNode& node = trie_[path.back()];
    if (node.tok_end != trie_tokens_.size()) node.tok_begin = node.tok_end = trie_tokens_.size();
    rank_[id] = static_cast<int32_t>(trie_tokens_.size());
    trie_tokens_.push_back(id);
    node.tok_end = static_cast<uint32_t>(trie_tokens_.size());
    prev = &s;
  }
  while (!path.empty()) {
    close(path.back());
    path.pop_back();
  }
}

}  // namespace kiln::grammar
