// Model subcommands: run, info, pull, perplexity, logits, bench.
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "json_out.h"
#include "kiln/engine.h"

namespace kiln::cli {
namespace {

using nlohmann::ordered_json;

struct CommonModelFlags {
  std::string model = "default";
  int n_threads = 0;
  int n_ctx = 0;
  SpeculateOptions speculate;
  void Add(CLI::App* cmd) {
    cmd->add_option("-m,--model", model, "GGUF file, HF folder, hf://org/name[/file] or 'default'");
    cmd->add_option("-t,--threads", n_threads, "threads (0 = all cores)")->check(CLI::NonNegativeNumber);
    cmd->add_option("-c,--ctx-size", n_ctx, "context size (0 = min(train ctx, 4096))")->check(CLI::NonNegativeNumber);
  }
  StatusOr<std::unique_ptr<Engine>> Load() const {
    return Engine::Load(
        {.model = model, .n_threads = n_threads, .n_ctx = n_ctx, .speculate = speculate});
  }
};

struct RunFlags {
  CommonModelFlags common;
  GenerateRequest req;
  std::string ids;
  bool json = false;
  bool no_special = false;
  std::string json_schema_file, grammar_file;  // structured generation (#7)
  bool json_object = false;
};

// --json-schema FILE / --grammar FILE / --json-object → the request's constraint; errors name
// the file (the engine prefixes its causes with constraint.field, set to the path here).
Status SetConstraint(const RunFlags& f, GenerateRequest* req) {
  const int n = !f.json_schema_file.empty() + !f.grammar_file.empty() + f.json_object;
  if (n > 1) return InvalidArgument("--json-schema, --grammar and --json-object are exclusive");
  Constraint& c = req->constraint;
  if (f.json_object) {
    c.kind = Constraint::Kind::kJsonObject;
    c.field = "--json-object";
  } else if (!f.json_schema_file.empty() || !f.grammar_file.empty()) {
    const bool schema = !f.json_schema_file.empty();
    const std::string& path = schema ? f.json_schema_file : f.grammar_file;
    KILN_ASSIGN_OR_RETURN(c.text, ReadFile(path));
    c.kind = schema ? Constraint::Kind::kJsonSchema : Constraint::Kind::kGbnf;
    c.field = path;
  }
  return Status::Ok();
}

int Run(const RunFlags& f) {
  GenerateRequest req = f.req;
  req.add_special = !f.no_special;
  if (Status st = SetConstraint(f, &req); !st.ok()) return PrintError(st);
  if (!f.ids.empty()) {
    auto ids = ParseIds(f.ids);
    if (!ids.ok()) return PrintError(ids.status());
    req.prompt_ids = *ids;
  } else if (req.prompt.empty()) {
    return PrintError(InvalidArgument("give a prompt with -p TEXT or token ids with --ids"));
  }
  auto engine = f.common.Load();
  if (!engine.ok()) return PrintError(engine.status());
  std::function<bool(std::string_view)> on_text;
  if (!f.json) {
    on_text = [](std::string_view delta) {
      std::fwrite(delta.data(), 1, delta.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  auto result = (*engine)->Generate(req, on_text);
  if (!result.ok()) return PrintError(result.status());
  const GenerateResult& r = *result;
  if (f.json) {
    double n_gen_after_first = r.output_ids.size() > 1 ? r.output_ids.size() - 1 : 0;
    PrintJsonLine(ordered_json{
        {"model", (*engine)->Info().path},
        {"prompt_ids", r.prompt_ids},
        {"output_ids", r.output_ids},
        {"text", r.text},
        {"finish_reason", r.finish_reason},
        {"forced_tokens", r.n_forced},
        {"speculation", {{"drafted_tokens", r.drafted_tokens},
                         {"accepted_tokens", r.accepted_tokens}}},
        {"timings",
         {{"load_ms", r.load_ms},
          {"prompt_ms", r.prompt_ms},
          {"gen_ms", r.gen_ms},
          {"prompt_tok_s", r.prompt_ms > 0 ? r.prompt_ids.size() * 1000.0 / r.prompt_ms : 0.0},
          {"gen_tok_s", r.gen_ms > 0 ? n_gen_after_first * 1000.0 / r.gen_ms : 0.0}}}});
  } else {
    std::printf("\n");
    std::fprintf(stderr, "[prompt %zu tok, %.1f ms | generated %zu tok, %.1f ms | %s",
                 r.prompt_ids.size(), r.prompt_ms, r.output_ids.size(), r.gen_ms,
                 r.finish_reason.c_str());
    if (r.drafted_tokens > 0) {
      std::fprintf(stderr, " | speculation: %d of %d drafted tokens accepted", r.accepted_tokens,
                   r.drafted_tokens);
    }
    std::fprintf(stderr, "]\n");
  }
  return 0;
}

ordered_json InfoJson(const ModelInfo& info, bool with_tensors) {
  ordered_json j{{"path", info.path},
                 {"format", info.format},
                 {"architecture", info.architecture},
                 {"name", info.name},
                 {"n_params", info.n_params},
                 {"n_bytes", info.n_bytes},
                 {"n_vocab", info.n_vocab},
                 {"n_ctx_train", info.n_ctx_train},
                 {"n_embd", info.n_embd},
                 {"n_layers", info.n_layers},
                 {"n_heads", info.n_heads},
                 {"n_heads_kv", info.n_heads_kv},
                 {"head_dim", info.head_dim},
                 {"n_ff", info.n_ff},
                 {"dtype_counts", info.dtype_counts},
                 {"bos_id", info.bos_id},
                 {"eos_id", info.eos_id},
                 {"eot_id", info.eot_id},
                 {"chat_template", info.chat_template}};
  if (with_tensors) {
    ordered_json tensors = ordered_json::array();
    for (const TensorSummary& t : info.tensors) {
      tensors.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}, {"n_bytes", t.n_bytes}});
    }
    j["tensors"] = tensors;
  }
  return j;
}

void PrintInfoText(const ModelInfo& info, bool with_tensors) {
  std::printf("path:          %s\n", info.path.c_str());
  std::printf("format:        %s\n", info.format.c_str());
  std::printf("architecture:  %s\n", info.architecture.c_str());
  if (!info.name.empty()) std::printf("name:          %s\n", info.name.c_str());
  std::printf("parameters:    %.1f M (%.1f MiB of tensor data)\n", info.n_params / 1e6,
              info.n_bytes / 1048576.0);
  std::printf("vocab:         %lld   train ctx: %lld\n", (long long)info.n_vocab, (long long)info.n_ctx_train);
  std::printf("layers:        %lld   embd: %lld   ff: %lld\n", (long long)info.n_layers,
              (long long)info.n_embd, (long long)info.n_ff);
  std::printf("heads:         %lld (kv %lld) x %lld\n", (long long)info.n_heads,
              (long long)info.n_heads_kv, (long long)info.head_dim);
  std::printf("tensor types: ");
  for (const auto& [dtype, n] : info.dtype_counts) std::printf(" %s:%lld", dtype.c_str(), (long long)n);
  std::printf("\nchat template: %s\n", info.chat_template.empty() ? "(none)" : "yes");
  if (with_tensors) {
    for (const TensorSummary& t : info.tensors) {
      std::string shape;
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(t.shape[i]);
      std::printf("  %-48s %-6s %-16s %llu\n", t.name.c_str(), t.dtype.c_str(), shape.c_str(),
                  (unsigned long long)t.n_bytes);
    }
  }
}

}  // namespace

void AddRunCommand(CLI::App& app, Handler* handler) {
  auto f = std::make_shared<RunFlags>();
  CLI::App* cmd = app.add_subcommand("run", "generate text once");
  f->common.Add(cmd);
  AddSpeculateOptions(cmd, &f->common.speculate);
  cmd->add_option("-p,--prompt", f->req.prompt, "prompt text");
  cmd->add_option("--ids", f->ids, "prompt as token ids (e.g. 1,2,3), instead of -p");
  cmd->add_option("-n,--max-tokens", f->req.max_tokens, "tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", f->req.temperature, "temperature (0 = greedy)");
  cmd->add_option("--top-k", f->req.top_k, "top-k (0 = off)");
  cmd->add_option("--top-p", f->req.top_p, "top-p (1 = off)");
  cmd->add_option("--min-p", f->req.min_p, "min-p (0 = off)");
  cmd->add_option("--seed", f->req.seed, "sampling seed");
  cmd->add_option("--stop", f->req.stop, "stop string (repeatable)");
  cmd->add_flag("--ignore-eos", f->req.ignore_eos, "keep generating after EOS/EOT");
  cmd->add_flag("--chat", f->req.chat, "apply the model's chat template to the prompt");
  cmd->add_flag("--special", f->req.parse_special, "parse special-token text in the prompt");
  cmd->add_flag("--no-special", f->no_special, "do not add BOS/EOS to the prompt");
  cmd->add_flag("--json", f->json, "print one JSON object (ids, text, timings)");
  cmd->add_option("--json-schema", f->json_schema_file,
                  "constrain the output to JSON valid under this JSON Schema file");
  cmd->add_option("--grammar", f->grammar_file, "constrain the output to this GBNF grammar file");
  cmd->add_flag("--json-object", f->json_object, "constrain the output to a JSON object");
  cmd->callback([f, handler] { *handler = [f] { return Run(*f); }; });
}

void AddInfoCommand(CLI::App& app, Handler* handler) {
  struct Flags { std::string model = "default"; bool json = false; bool tensors = false; };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("info", "describe a model: architecture, sizes, tensor types");
  cmd->add_option("-m,--model", f->model, "model reference");
  cmd->add_flag("--json", f->json, "print JSON");
  cmd->add_flag("--tensors", f->tensors, "list every tensor");
  cmd->callback([f, handler] {
    *handler = [f] {
      auto info = InspectModel(f->model);
      if (!info.ok()) return PrintError(info.status());
      if (f->json) {
        PrintJsonLine(InfoJson(*info, f->tensors));
      } else {
        PrintInfoText(*info, f->tensors);
      }
      return 0;
    };
  });
}

void AddPullCommand(CLI::App& app, Handler* handler) {
  auto model = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("pull", "download a model reference into the cache; print its path");
  cmd->add_option("model", *model, "hf://org/name[/file], a path, or 'default'")->required();
  cmd->callback([model, handler] {
    *handler = [model] {
      auto path = ResolveModel(*model);
      if (!path.ok()) return PrintError(path.status());
      std::printf("%s\n", path->c_str());
      return 0;
    };
  });
}

void AddPerplexityCommand(CLI::App& app, Handler* handler) {
  struct Flags { CommonModelFlags common; std::string file; int32_t chunks = 0; int32_t ctx = 512; bool json = false; };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("perplexity", "perplexity of a text file (llama.cpp's method)");
  cmd->add_option("-m,--model", f->common.model, "model reference");
  cmd->add_option("-t,--threads", f->common.n_threads, "threads");
  cmd->add_option("-f,--file", f->file, "text file")->required();
  cmd->add_option("-c,--ctx-size", f->ctx, "tokens per chunk")->check(CLI::PositiveNumber);
  cmd->add_option("--chunks", f->chunks, "max chunks (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", f->json, "print JSON");
  cmd->callback([f, handler] {
    *handler = [f] {
      auto text = ReadFile(f->file);
      if (!text.ok()) return PrintError(text.status());
      CommonModelFlags common = f->common;
      common.n_ctx = f->ctx;
      auto engine = common.Load();
      if (!engine.ok()) return PrintError(engine.status());
      auto r = (*engine)->Perplexity(*text, f->ctx, f->chunks);
      if (!r.ok()) return PrintError(r.status());
      if (f->json) {
        PrintJsonLine({{"n_ctx", r->n_ctx}, {"n_chunks", r->n_chunks}, {"n_scored", r->n_scored},
                       {"perplexity", r->perplexity}, {"chunk_nll", r->chunk_nll}});
      } else {
        std::printf("perplexity: %.4f over %d chunks of %d tokens (%lld scored)\n", r->perplexity,
                    r->n_chunks, r->n_ctx, (long long)r->n_scored);
      }
      return 0;
    };
  });
}

void AddLogitsCommand(CLI::App& app, Handler* handler) {
  struct Flags { CommonModelFlags common; std::string ids; std::string out; };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("logits", "raw logits of every position of token ids (for tests)");
  f->common.Add(cmd);
  cmd->add_option("--ids", f->ids, "token ids")->required();
  cmd->add_option("-o,--out", f->out, "write little-endian f32 [n_tokens, n_vocab] here")->required();
  cmd->callback([f, handler] {
    *handler = [f] {
      auto ids = ParseIds(f->ids);
      if (!ids.ok()) return PrintError(ids.status());
      auto engine = f->common.Load();
      if (!engine.ok()) return PrintError(engine.status());
      auto logits = (*engine)->Logits(*ids);
      if (!logits.ok()) return PrintError(logits.status());
      FILE* fp = std::fopen(f->out.c_str(), "wb");
      if (fp == nullptr) return PrintError(NotFound("cannot write '%s'", f->out.c_str()));
      size_t n = std::fwrite(logits->data(), sizeof(float), logits->size(), fp);
      std::fclose(fp);
      if (n != logits->size()) return PrintError(Internal("short write to '%s'", f->out.c_str()));
      PrintJsonLine({{"n_tokens", ids->size()}, {"n_vocab", (*engine)->Info().n_vocab}, {"out", f->out}});
      return 0;
    };
  });
}

void AddBenchCommand(CLI::App& app, Handler* handler) {
  struct Flags {
    CommonModelFlags common;
    int32_t n_prompt = 512, n_gen = 128, n_reps = 5;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("bench", "prompt and generation speed (tokens/s)");
  f->common.Add(cmd);
  cmd->add_option("-p,--n-prompt", f->n_prompt, "prompt tokens")->check(CLI::NonNegativeNumber);
  cmd->add_option("-n,--n-gen", f->n_gen, "generated tokens")->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--repetitions", f->n_reps, "timed repetitions (after one warm-up)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", f->json, "print JSON");
  cmd->callback([f, handler] {
    *handler = [f] {
      auto engine = f->common.Load();
      if (!engine.ok()) return PrintError(engine.status());
      auto r = (*engine)->Bench(f->n_prompt, f->n_gen, f->n_reps);
      if (!r.ok()) return PrintError(r.status());
      const ModelInfo& info = (*engine)->Info();
      // CPU share: CPU seconds / (wall seconds x threads), 1.0 = every thread busy throughout.
      auto share = [&](double cpu, double wall) { return wall > 0 ? cpu / (wall * r->n_threads) : 0.0; };
      if (f->json) {
        PrintJsonLine({{"model", info.path}, {"isa", r->isa}, {"threads", r->n_threads},
                       {"n_prompt", r->n_prompt}, {"n_gen", r->n_gen}, {"n_reps", r->n_reps},
                       {"load_ms", r->load_ms},
                       {"pp_tok_s", r->pp_tok_s}, {"pp_tok_s_std", r->pp_tok_s_std},
                       {"tg_tok_s", r->tg_tok_s}, {"tg_tok_s_std", r->tg_tok_s_std},
                       {"pp_runs", r->pp_runs}, {"tg_runs", r->tg_runs},
                       {"pp_cpu_s", r->pp_cpu_s}, {"tg_cpu_s", r->tg_cpu_s},
                       {"pp_wall_s", r->pp_wall_s}, {"tg_wall_s", r->tg_wall_s},
                       {"pp_cpu_share", share(r->pp_cpu_s, r->pp_wall_s)},
                       {"tg_cpu_share", share(r->tg_cpu_s, r->tg_wall_s)},
                       {"read_gbs", r->read_gbs}, {"tg_bytes_per_token", r->tg_bytes_per_token},
                       {"tg_roofline", r->tg_roofline}});
      } else {
        std::printf("| model | isa | threads | test | t/s | CPU share |\n|---|---|---|---|---|---|\n");
        std::printf("| %s | %s | %d | pp%d | %.2f ± %.2f | %.2f |\n", info.name.c_str(), r->isa.c_str(),
                    r->n_threads, r->n_prompt, r->pp_tok_s, r->pp_tok_s_std, share(r->pp_cpu_s, r->pp_wall_s));
        if (r->n_gen > 0) {
          std::printf("| %s | %s | %d | tg%d | %.2f ± %.2f | %.2f |\n", info.name.c_str(), r->isa.c_str(),
                      r->n_threads, r->n_gen, r->tg_tok_s, r->tg_tok_s_std, share(r->tg_cpu_s, r->tg_wall_s));
          std::printf("\nread bandwidth %.1f GB/s (%d threads); tg reads %.1f MB per token: %.0f %% "
                      "of the memory roofline\n",
                      r->read_gbs, r->n_threads, r->tg_bytes_per_token / 1e6, 100 * r->tg_roofline);
        }
      }
      return 0;
    };
  });
}

}  // namespace kiln::cli
