// Stand-in for libFuzzer where the compiler lacks -fsanitize=fuzzer (GCC): runs the target on
// the seed corpus, then on deterministic random mutations of it (byte flips, inserts of JSON
// punctuation, truncations, splices). `request_fuzz [ITERATIONS] [FILES...]`.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

const char* kSeeds[] = {
    R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true,
        "stream_options":{"include_usage":true},"logit_bias":{"12":-5},"stop":["a","b"]})",
    R"({"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"x"}]},
        {"role":"assistant","content":null,"tool_calls":[]},{"role":"tool","content":"r",
        "tool_call_id":"t"}],"n":2,"seed":-3,"logprobs":true,"top_logprobs":3,"temperature":0.5})",
    R"({"model":"m","prompt":[1,2,3],"logprobs":2,"max_tokens":16,"top_k":5,"min_p":0.1})",
    R"({"model":"m","prompt":"text","response_format":{"type":"text"},"tools":[],"user":"u"})",
};

const char kPunct[] = "{}[]\",:0-9.eE\\u\xff\xc3 ntf";

std::string Mutate(std::string s, std::mt19937_64& rng) {
  int n_edits = 1 + rng() % 8;
  for (int i = 0; i < n_edits; ++i) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 5) {
      case 0: if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(rng()); break;
      case 1: s.insert(pos, 1, kPunct[rng() % (sizeof(kPunct) - 1)]); break;
      case 2: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
      case 3: s.resize(pos); break;
      case 4: s.insert(pos, std::string(kSeeds[rng() % 4]).substr(0, rng() % 64)); break;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 20000;
  std::vector<std::string> corpus(std::begin(kSeeds), std::end(kSeeds));
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    corpus.push_back(ss.str());
  }
  for (const std::string& s : corpus) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::mt19937_64 rng(12345);
  for (long i = 0; i < iterations; ++i) {
    std::string s = Mutate(corpus[rng() % corpus.size()], rng);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::printf("request_fuzz: %ld inputs ok\n", iterations + static_cast<long>(corpus.size()));
  return 0;
}
