// Output helpers shared by the subcommands: error printing and JSON to stdout.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "kiln/engine.h"

namespace kiln::cli {

// Prints "kiln: error: <message>" to stderr and returns the exit code for it (1).
int PrintError(const Status& status);
// One JSON object on one line (DESIGN.md: `--json` prints one object per line).
void PrintJsonLine(const nlohmann::ordered_json& j);
// Reads a whole file; NotFound / InvalidArgument on failure.
StatusOr<std::string> ReadFile(const std::string& path);
// Parses "1,2,3", "1 2 3" or "[1, 2, 3]" into token ids.
StatusOr<std::vector<int32_t>> ParseIds(const std::string& text);

}  // namespace kiln::cli
