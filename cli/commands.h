// Subcommands of `kiln`. Each Add*Command registers its options on the app and sets the
// handler that runs when the subcommand is chosen; handlers return the process exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <string>

#include "kiln/engine.h"

namespace kiln::cli {

using Handler = std::function<int()>;

void AddRunCommand(CLI::App& app, Handler* handler);
void AddInfoCommand(CLI::App& app, Handler* handler);
void AddPullCommand(CLI::App& app, Handler* handler);
void AddPerplexityCommand(CLI::App& app, Handler* handler);
void AddLogitsCommand(CLI::App& app, Handler* handler);
void AddBenchCommand(CLI::App& app, Handler* handler);
void AddTokenizeCommand(CLI::App& app, Handler* handler);
void AddDetokenizeCommand(CLI::App& app, Handler* handler);
void AddTemplateCommand(CLI::App& app, Handler* handler);
void AddServeCommand(CLI::App& app, Handler* handler);
void AddChatCommand(CLI::App& app, Handler* handler);

// --speculate off|lookup|auto and --draft-max, shared by run, serve and chat.
inline void AddSpeculateOptions(CLI::App* cmd, SpeculateOptions* o) {
  const std::map<std::string, SpeculateMode> modes = {
      {"off", SpeculateMode::kOff}, {"lookup", SpeculateMode::kLookup},
      {"draft", SpeculateMode::kDraft}, {"auto", SpeculateMode::kAuto}};
  cmd->add_option("--speculate", o->mode,
                  "speculative decoding, which never changes the output: off, lookup (prompt "
                  "lookup, every guess), draft (the --draft model, every step) or auto (where "
                  "it pays, from --draft or prompt lookup; default)")
      ->transform(CLI::CheckedTransformer(modes));
  cmd->add_option("--draft", o->draft_model,
                  "draft model for speculation (same vocabulary as the model)");
  cmd->add_option("--draft-max", o->draft_max,
                  "most guessed tokens per sequence per step (0 = 8 lookup, 4 draft)")
      ->check(CLI::Range(0, 64));
}

}  // namespace kiln::cli
