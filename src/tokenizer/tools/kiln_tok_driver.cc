// kiln_tok_driver MODEL: a JSON-lines front end to kiln::tokenizer for differential tests and
// benchmarks (tests/py/test_tokenizer*.py, bench/tokenizer_bench.py).
// MODEL is a .gguf file, a tokenizer.json, or a folder holding one. One request per stdin line:
//   {"op":"encode","text":"…","add_special":false,"parse_special":false} → {"ids":[…]}
//   {"op":"decode","ids":[…],"skip_special":false}                       → {"text":"…"}
//   {"op":"stream","ids":[…],"stop":["…"],"skip_special":true}
//        → {"deltas":[…],"stopped":b,"valid_utf8":b}
//   {"op":"bench","text":"…","iters":N}  (or "lines":[…])                → {"seconds":s,"n_tokens":n}
//   {"op":"info"}                                                        → ids and flags
// Errors are reported as {"error":"…"} on the same line; the driver keeps going.
#include <chrono>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/tensor_source.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using kiln::tokenizer::Tokenizer;
using nlohmann::json;

namespace {

kiln::StatusOr<std::shared_ptr<const Tokenizer>> Load(const std::string& path) {
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    KILN_ASSIGN_OR_RETURN(auto src, kiln::io::OpenTensorSource(path));
    return Tokenizer::FromSource(*src);
  }
  return Tokenizer::FromHfFiles(path);
}

json Handle(const Tokenizer& tok, std::shared_ptr<const Tokenizer> shared, const json& req) {
  std::string op = req.value("op", "");
  if (op == "encode" || op == "bench") {
    std::string text = req.value("text", "");
    kiln::tokenizer::EncodeOptions opts{req.value("add_special", false),
                                        req.value("parse_special", false)};
    if (op == "bench") {  // "lines": encode each line separately instead of "text"
      std::vector<std::string> lines = req.value("lines", std::vector<std::string>{});
      if (lines.empty()) lines.push_back(text);
      int iters = req.value("iters", 1);
      size_t n_tokens = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) {
        n_tokens = 0;
        for (const std::string& line : lines) {
          auto ids = tok.Encode(line, opts);
          if (!ids.ok()) return {{"error", ids.status().ToString()}};
          n_tokens += ids->size();
        }
      }
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return {{"seconds", s}, {"n_tokens", n_tokens}};
    }
    auto ids = tok.Encode(text, opts);
    if (!ids.ok()) return {{"error", ids.status().ToString()}};
    return {{"ids", *ids}};
  }
  if (op == "decode") {
    std::vector<int32_t> ids = req.value("ids", std::vector<int32_t>{});
    return {{"text", tok.Decode(ids, req.value("skip_special", false))}};
  }
  if (op == "stream") {
    std::vector<int32_t> ids = req.value("ids", std::vector<int32_t>{});
    kiln::tokenizer::Detokenizer detok(shared, req.value("stop", std::vector<std::string>{}),
                                       req.value("skip_special", true));
    json deltas = json::array();
    bool valid = true;
    auto add = [&](std::string d) {
      valid = valid && kiln::IsValidUtf8(d);
      deltas.push_back(std::move(d));
    };
    for (int32_t id : ids) add(detok.Push(id));
    add(detok.Finish());
    return {{"deltas", deltas}, {"stopped", detok.stopped()}, {"valid_utf8", valid}};
  }
  if (op == "info") {
    return {{"n_vocab", tok.n_vocab()}, {"bos", tok.bos_id()}, {"eos", tok.eos_id()},
            {"eot", tok.eot_id()}, {"pad", tok.pad_id()}, {"add_bos", tok.add_bos()},
            {"add_eos", tok.add_eos()}, {"eog", tok.eog_ids()},
            {"has_chat_template", !tok.chat_template().empty()}};
  }
  return {{"error", "unknown op '" + op + "'"}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: kiln_tok_driver MODEL.gguf|tokenizer.json|DIR < requests.jsonl\n";
    return 2;
  }
  auto tok = Load(argv[1]);
  if (!tok.ok()) {
    std::cerr << "kiln_tok_driver: " << tok.status().ToString() << "\n";
    return 1;
  }
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    json req = json::parse(line, nullptr, false);
    json resp = req.is_discarded() ? json{{"error", "bad JSON"}} : Handle(**tok, *tok, req);
    std::cout << resp.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
  }
  return 0;
}
