// Subcommands of `kiln`. Each Add*Command registers its options on the app and sets the
// handler that runs when the subcommand is chosen; handlers return the process exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

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

}  // namespace kiln::cli
