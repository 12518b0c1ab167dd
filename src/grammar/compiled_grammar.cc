#include "grammar/compiled_grammar.h"

#include <algorithm>
#include <array>
#include <optional>
#include <queue>
#include <unordered_map>
#include <unordered_set>

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
    if (f.exhausted || engine.work() > internal::kMaxMaskWork) {
      *out = CompiledGrammar::ContextMask();
      out->exhausted = true;
      out->work = engine.work();
      return;
    }
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
  out->work = engine.work();
  int32_t n_vocab = vocab.n_vocab();
  if (accepted.size() > static_cast<size_t>(n_vocab) / 32) {
    out->accepted_bits.assign((n_vocab + 31) / 32, 0);
    for (int32_t id : accepted) out->accepted_bits[id >> 5] |= 1u << (id & 31);
  } else {
    out->accepted = std::move(accepted);
  }
}

}  // namespace internal

namespace {

std::string EscapeForMessage(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      out += StrFormat("\\x%02X", c);
    }
  }
  return out;
}

// Best-first search from `start` (largest frontiers first) for an input whose step exceeds
// the work bounds; returns it, or nothing within max_visits states / until engine work reaches
// work_end.
std::optional<std::string> FindExhaustingInput(const Grammar& g, StackEngine* engine,
                                               StateTable* table, const Frontier& start,
                                               size_t max_visits, uint64_t work_end) {
  struct Visit {
    int32_t state;
    int32_t from;  // index into visits, -1 for the start
    uint8_t byte;
  };
  std::vector<Visit> visits = {{table->Intern(start), -1, 0}};
  std::unordered_set<int32_t> queued = {visits[0].state};
  std::vector<size_t> sizes = {start.tops.size()};
  auto smaller = [&](size_t a, size_t b) { return sizes[a] < sizes[b]; };
  std::priority_queue<size_t, std::vector<size_t>, decltype(smaller)> heap(smaller);
  heap.push(0);
  const auto& elems = g.elements();
  for (size_t n = 0; !heap.empty() && n < max_visits && engine->work() < work_end; ++n) {
    const size_t v = heap.top();
    heap.pop();
    // Bytes accepted by the same byte sets lead to the same state: one byte per class.
    std::vector<uint32_t> sets;
    for (uint64_t top : table->state(visits[v].state).tops) {
      sets.push_back(elems[internal::TopPos(top)].index);
    }
    std::sort(sets.begin(), sets.end());
    sets.erase(std::unique(sets.begin(), sets.end()), sets.end());
    std::array<uint64_t, 256> sig{};
    for (uint32_t set : sets) {
      const ByteSet& bs = g.byte_set(set);
      for (int b = 0; b < 256; ++b) {
        if (bs.test(b)) sig[b] = (sig[b] ^ (set + 1)) * 1099511628211ULL + 1;
      }
    }
    std::unordered_set<uint64_t> classes;
    for (int b = 0; b < 256; ++b) {
      if (sig[b] == 0 || !classes.insert(sig[b]).second) continue;
      int32_t next = table->Next(visits[v].state, static_cast<uint8_t>(b));
      const Frontier& f = table->state(next);
      if (f.exhausted) {
        std::string input(1, static_cast<char>(b));
        for (int32_t i = static_cast<int32_t>(v); visits[i].from >= 0; i = visits[i].from) {
          input.insert(input.begin(), static_cast<char>(visits[i].byte));
        }
        return input;
      }
      if (f.tops.empty() || !queued.insert(next).second) continue;
      visits.push_back({next, static_cast<int32_t>(v), static_cast<uint8_t>(b)});
      sizes.push_back(f.tops.size());
      heap.push(visits.size() - 1);
    }
  }
  return std::nullopt;
}

Status TooAmbiguous(const std::string& rule, const std::string& input) {
  std::string where = rule.empty() ? "" : "in rule '" + rule + "', ";
  if (input.empty()) {
    where += "at the start,";
  } else {
    where += "after the input \"" + EscapeForMessage(input.substr(0, 64)) +
             (input.size() > 64 ? "...\"," : "\",");
  }
  return ResourceExhausted("%s", internal::TooAmbiguousMessage(where).c_str());
}

// Rules on a cycle of rule references (Tarjan's SCCs, iteratively), callers before callees
// (outer repetitions first): the only places where the number of parse stacks can keep
// growing with the input.
std::vector<uint32_t> RecursiveRules(const Grammar& g) {
  const size_t n = g.n_rules();
  std::vector<std::vector<uint32_t>> refs(n);
  std::vector<bool> self(n, false);
  for (uint32_t r = 0; r < n; ++r) {
    for (uint32_t p : g.rule_alts(r)) {
      for (; g.element(p).kind != Kind::kEnd; ++p) {
        if (g.element(p).kind != Kind::kRuleRef) continue;
        refs[r].push_back(g.element(p).index);
        if (g.element(p).index == r) self[r] = true;
      }
    }
  }
  constexpr uint32_t kUnseen = ~0u;
  std::vector<uint32_t> index(n, kUnseen), low(n, 0);
  std::vector<bool> on_stack(n, false);
  std::vector<uint32_t> recursive;  // SCCs complete callees first
  std::vector<uint32_t> stack;
  std::vector<std::pair<uint32_t, size_t>> calls;  // (rule, next edge)
  uint32_t counter = 0;
  for (uint32_t root = 0; root < n; ++root) {
    if (index[root] != kUnseen) continue;
    calls.push_back({root, 0});
    while (!calls.empty()) {
      auto& [v, e] = calls.back();
      if (e == 0 && index[v] == kUnseen) {
        index[v] = low[v] = counter++;
        stack.push_back(v);
        on_stack[v] = true;
      }
      if (e < refs[v].size()) {
        uint32_t w = refs[v][e++];
        if (index[w] == kUnseen) {
          calls.push_back({w, 0});
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
        continue;
      }
      const uint32_t done = v;
      calls.pop_back();
      if (!calls.empty()) low[calls.back().first] = std::min(low[calls.back().first], low[done]);
      if (low[done] != index[done]) continue;
      size_t first = stack.size();
      do --first;
      while (stack[first] != done);
      const bool cycle = stack.size() - first > 1 || self[done];
      for (size_t i = first; i < stack.size(); ++i) {
        on_stack[stack[i]] = false;
        if (cycle) recursive.push_back(stack[i]);
      }
      stack.resize(first);
    }
  }
  std::reverse(recursive.begin(), recursive.end());
  return recursive;
}

}  // namespace

Status CheckGrammarWork(const Grammar& g) {
  constexpr size_t kMaxVisits = 64;         // states expanded from the grammar's start
  constexpr size_t kMaxRuleVisits = 8;      // ... from each rule's start
  constexpr uint64_t kMaxWork = uint64_t{1} << 20;  // Expand visits, each of the two searches
  constexpr size_t kMaxTableStates = 4096;  // memo size (1 KiB per state)
  NodePool pool;
  StackEngine engine(g, &pool);
  StateTable table(&engine);
  Frontier start;
  engine.Start(g.root_rule(), internal::kRootParent, &start);
  if (start.exhausted) return TooAmbiguous("", "");
  if (auto input = FindExhaustingInput(g, &engine, &table, start, kMaxVisits, kMaxWork)) {
    return TooAmbiguous("", *input);
  }
  // Every recursive rule on its own (over a sentinel frame): an ambiguous region behind a
  // prefix the search above does not reach (a property's pattern) blows up a few bytes into
  // its outermost repetition.
  const uint64_t work_end = engine.work() + kMaxWork;
  for (uint32_t r : RecursiveRules(g)) {
    if (engine.work() >= work_end) break;
    if (table.size() > kMaxTableStates) table.Clear();
    engine.Start(r, internal::kSentinelParent, &start);
    if (start.exhausted) return TooAmbiguous(g.rule_name(r), "");
    if (auto input = FindExhaustingInput(g, &engine, &table, start, kMaxRuleVisits, work_end)) {
      return TooAmbiguous(g.rule_name(r), *input);
    }
  }
  return Status::Ok();
}

CompiledGrammar::CompiledGrammar(Grammar grammar, std::shared_ptr<const TokenVocab> vocab)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)) {}

std::shared_ptr<const CompiledGrammar> CompiledGrammar::Compile(
    Grammar grammar, std::shared_ptr<const TokenVocab> vocab) {
  return std::shared_ptr<const CompiledGrammar>(
      new CompiledGrammar(std::move(grammar), std::move(vocab)));
}

const CompiledGrammar::ContextMask& CompiledGrammar::GetContextMask(uint64_t top, NodePool* pool,
                                                                    uint64_t* work) const {
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
  if (work) *work += mask->work;
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
  KILN_RETURN_IF_ERROR(CheckGrammarWork(g));
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
  KILN_RETURN_IF_ERROR(CheckGrammarWork(g));
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
