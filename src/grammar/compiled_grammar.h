// CompiledGrammar: a Grammar bound to a TokenVocab, with the work that does not depend on the
// whole runtime stack done once and cached. A context is the top position plus the positions of
// the kContextFrames frames below it; for each context that occurs, one walk of the vocabulary
// trie classifies every token as accepted (valid whatever lies deeper in the stack), rejected,
// or uncertain (it runs past the context's frames, so the matcher checks it against the real
// stack). This is XGrammar's adaptive token-mask cache (Dong et al. 2024) with a few frames of
// context instead of one rule, filled lazily on first use (thread-safe) so that compiling is
// cheap and only contexts a generation reaches are ever computed.
// Immutable apart from that cache: share as std::shared_ptr<const CompiledGrammar>.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "grammar/grammar.h"
#include "grammar/stack_engine.h"
#include "grammar/token_vocab.h"

namespace kiln::grammar {

class CompiledGrammar {
 public:
  static std::shared_ptr<const CompiledGrammar> Compile(Grammar grammar,
                                                        std::shared_ptr<const TokenVocab> vocab);

  const Grammar& grammar() const { return grammar_; }
  const TokenVocab& vocab() const { return *vocab_; }
  const std::shared_ptr<const TokenVocab>& vocab_ptr() const { return vocab_; }

  static constexpr int kContextFrames = 2;
  struct ContextMask {
    std::vector<int32_t> accepted;        // token ids (when sparse)
    std::vector<uint32_t> accepted_bits;  // bitmask over the vocabulary (when dense), else empty
    std::vector<int32_t> uncertain;       // token ids in byte-lexicographic order
    bool exhausted = false;  // the walk exceeded the work bounds (stack_engine.h): unusable
    uint64_t work = 0;       // stack-engine work the walk took
  };
  // The mask for the context of stack `top` (a packed top in `pool`'s nodes), computed on first
  // use. Thread-safe; the reference stays valid for the CompiledGrammar's lifetime.
  // *work (if given) grows by the stack-engine work spent computing it now (0 when cached).
  const ContextMask& GetContextMask(uint64_t top, internal::NodePool* pool,
                                    uint64_t* work = nullptr) const;

  size_t n_contexts() const;
  size_t n_uncertain_total() const;

 private:
  CompiledGrammar(Grammar grammar, std::shared_ptr<const TokenVocab> vocab);

  using Key = std::array<uint32_t, kContextFrames + 1>;
  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = 1469598103934665603ULL;
      for (uint32_t x : k) h = (h ^ x) * 1099511628211ULL;
      return h;
    }
  };

  Grammar grammar_;
  std::shared_ptr<const TokenVocab> vocab_;
  mutable std::mutex mu_;
  mutable std::unordered_map<Key, std::unique_ptr<ContextMask>, KeyHash> masks_;
};

// Classifies every token for the state {(pos, parent)} by walking the trie (shared by the
// compiler and by the matcher's fallback). With parent = kSentinelParent-rooted frames some
// tokens come out uncertain; with a real stack none do.
namespace internal {
void ClassifyTokens(const Grammar& g, const TokenVocab& vocab, NodePool* pool, uint32_t pos,
                    int32_t parent, CompiledGrammar::ContextMask* out);
}  // namespace internal

// Rejects a grammar whose matcher exceeds the work bounds of stack_engine.h on some short
// input: a bounded best-first search over parse states from the start (largest frontiers
// first: the blowup of ambiguous grammars grows along inputs that keep every level alive).
// ResourceExhausted("grammar too ambiguous: after the input \"...\", ...") when one is found.
// Ok means none was found within the search bounds; the Matcher still fails closed at run time.
// GrammarCompiler runs it on every grammar it compiles.
Status CheckGrammarWork(const Grammar& g);

// Thread-safe cache of compiled grammars for one vocabulary, keyed by the caller's key (e.g. the
// grammar text or the canonical schema JSON). Least recently used entries beyond `capacity` go.
class GrammarCompiler {
 public:
  explicit GrammarCompiler(std::shared_ptr<const TokenVocab> vocab, size_t capacity = 64);

  // Errors: InvalidArgument (syntax), ResourceExhausted (size limits, CheckGrammarWork).
  StatusOr<std::shared_ptr<const CompiledGrammar>> CompileGbnf(const std::string& gbnf);
  // schema_json: a JSON Schema document (see json_schema.h).
  StatusOr<std::shared_ptr<const CompiledGrammar>> CompileJsonSchema(const std::string& schema_json);
  std::shared_ptr<const CompiledGrammar> CompileBuiltinJson();  // {"type":"json_object"}

  const std::shared_ptr<const TokenVocab>& vocab() const { return vocab_; }

 private:
  std::shared_ptr<const CompiledGrammar> Find(const std::string& key);
  void Insert(const std::string& key, std::shared_ptr<const CompiledGrammar> g);

  std::shared_ptr<const TokenVocab> vocab_;
  size_t capacity_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<const CompiledGrammar>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> map_;
};

}  // namespace kiln::grammar
