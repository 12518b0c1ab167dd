// `kiln`: the command-line front end. Subcommands are defined in commands_*.cc; the contract
// (names, flags, --json fields) is documented in docs/cli.md.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln: run, serve and inspect LLMs on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kiln 0.1.0");
  kiln::cli::Handler handler;
  kiln::cli::AddRunCommand(app, &handler);
  kiln::cli::AddInfoCommand(app, &handler);
  kiln::cli::AddPullCommand(app, &handler);
  kiln::cli::AddPerplexityCommand(app, &handler);
  kiln::cli::AddLogitsCommand(app, &handler);
  kiln::cli::AddBenchCommand(app, &handler);
  kiln::cli::AddTokenizeCommand(app, &handler);
  kiln::cli::AddDetokenizeCommand(app, &handler);
  kiln::cli::AddTemplateCommand(app, &handler);
  kiln::cli::AddServeCommand(app, &handler);
  kiln::cli::AddChatCommand(app, &handler);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return handler ? handler() : 1;
}
