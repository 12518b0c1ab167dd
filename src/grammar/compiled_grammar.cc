#include "grammar/compiled_grammar.h"

#include <array>

#include "grammar/json_schema.h"
#include "grammar/stack_engine.h"

namespace kiln::grammar {

using internal::Frontier;
using internal::NodePool;
using internal::StackEngine;
using internal::StateTable;
using Kind = GrammarElement::Kind;

namespace internal {

void ClassifyTokens(const Grammar& g, const TokenVocab& vocab, NodePool* pool, uint32_t pos,
                    int32_t parent, CompiledGrammar::ContextMask* out) {
  const auto& trie = vocab.trie();
  const auto& toks = vocab.trie_tokens();
  StackEngine engine(g, pool);
  StateTable table(&engine);
  size_t max_depth = vocab.max_token_bytes();
  std::vector<int32_t> levels(max_depth + 1);
  std::vector<uint8_t> esc_before(max_depth + 1, 0);
  Frontier start;
  start.tops = {internal::PackTop(pos, parent)};
  levels[0] = table.Intern(start);
  std::vector<int32_t> accepted;
  auto add_range = [&](std::vector<int32_t>& v, uint32_t b, uint32_t e) {
    v.insert(v.end(), toks.begin() + b, toks.begin() + e);
  };
  for (uint32_t i = 1; i < trie.size();) {
    const auto& node = trie[i];
    size_t d = node.depth;
    levels[d] = table.Next(levels[d - 1], node.byte);
    const Frontier& f = table.state(levels[d]);
    bool alive = !f.tops.empty();
    if (alive || f.ended || f.escaped) {
      add_range(accepted, node.tok_begin, node.tok_end);
    } else if (esc_before[d - 1]) {
      add_range(out->uncertain, node.tok_begin, node.tok_end);
    }
    esc_before[d] = esc_before[d - 1] || f.escaped;
    if (!alive) {
      if (esc_before[d] && i + 1 < node.subtree_end) {
        add_range(out->uncertain, trie[i + 1].tok_begin, trie[node.subtree_end - 1].tok_end);
      }
      i = node.subtree_end;
      continue;
    }
    ++i;
  }
  int32_t n_vocab = vocab.n_vocab();
  if (accepted.size() > static_cast<size_t>(n_vocab) / 32) {
    out->accepted_bits.assign((n_vocab + 31) / 32, 0);
    for (int32_t id : accepted) out->accepted_bits[id >> 5] |= 1u << (id & 31);
  } else {
    out->accepted = std::move(accepted);
  }
}

}  // namespace internal

CompiledGrammar::CompiledGrammar(Grammar grammar, std::shared_ptr<const TokenVocab> vocab)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)) {}

std::shared_ptr<const CompiledGrammar> CompiledGrammar::Compile(
    Grammar grammar, std::shared_ptr<const TokenVocab> vocab) {
  return std::shared_ptr<const CompiledGrammar>(
      new CompiledGrammar(std::move(grammar), std::move(vocab)));
}

const CompiledGrammar::ContextMask& CompiledGrammar::GetContextMask(uint64_t top,
                                                                    NodePool* pool) const {
  constexpr uint32_t kRootMark = 0xFFFFFFFFu, kNone = 0xFFFFFFFEu;
  Key key;
  key.fill(kNone);
  key[0] = internal::TopPos(top);
  int32_t node = internal::TopParent(top);
  int depth = 0;
  for (; depth < kContextFrames; ++depth) {
    if (node < 0) {
      key[depth + 1] = kRootMark;
      break;
    }
    key[depth + 1] = pool->pos(node);
    node = pool->parent(node);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = masks_.find(key);
    if (it != masks_.end()) return *it->second;
  }
  // Rebuild the context's frames over a sentinel (or the root, if the stack is that short).
  int32_t parent = internal::kSentinelParent;
  int n_frames = depth;
  if (depth < kContextFrames) parent = internal::kRootParent;
  for (int i = n_frames; i >= 1; --i) parent = pool->Intern(key[i], parent);
  auto mask = std::make_unique<ContextMask>();
  internal::ClassifyTokens(grammar_, *vocab_, pool, key[0], parent, mask.get());
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = masks_.emplace(key, std::move(mask));
  return *it->second;
}

size_t CompiledGrammar::n_contexts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return masks_.size();
}

size_t CompiledGrammar::n_uncertain_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [k, m] : masks_) n += m->uncertain.size();
  return n;
}

GrammarCompiler::GrammarCompiler(std::shared_ptr<const TokenVocab> vocab, size_t capacity)
    : vocab_(std::move(vocab)), capacity_(capacity) {}

std::shared_ptr<const CompiledGrammar> GrammarCompiler::Find(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void GrammarCompiler::Insert(const std::string& key, std::shared_ptr<const CompiledGrammar> g) {
  std::lock_guard<std::mutex> lock(mu_);
  if (map_.count(key)) return;
  lru_.emplace_front(key, std::move(g));
  map_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    map_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

StatusOr<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::CompileGbnf(
    const std::string& gbnf) {
  std::string key = "gbnf\n" + gbnf;
  if (auto hit = Find(key)) return hit;
  KILN_ASSIGN_OR_RETURN(Grammar g, Grammar::FromGbnf(gbnf));
  auto cg = CompiledGrammar::Compile(std::move(g), vocab_);
  Insert(key, cg);
  return cg;
}

StatusOr<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::CompileJsonSchema(
    const std::string& schema_json) {
  std::string key = "schema\n" + schema_json;
  if (auto hit = Find(key)) return hit;
  KILN_ASSIGN_OR_RETURN(std::string gbnf, JsonSchemaToGbnf(schema_json));
  KILN_ASSIGN_OR_RETURN(Grammar g, Grammar::FromGbnf(gbnf));
  auto cg = CompiledGrammar::Compile(std::move(g), vocab_);
  Insert(key, cg);
  return cg;
}

std::shared_ptr<const CompiledGrammar> GrammarCompiler::CompileBuiltinJson() {
  auto cg = CompileJsonSchema(R"({"type":"object"})");
  KILN_CHECK(cg.ok()) << cg.status().ToString();
  return *cg;
}

}  // namespace kiln::grammar
