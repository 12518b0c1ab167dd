// Text subcommands: tokenize, detokenize, template. They load only the tokenizer (and the
// chat template) of a model, never its weights for compute.
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "commands.h"
#include "json_out.h"
#include "kiln/engine.h"

namespace kiln::cli {
namespace {

using nlohmann::ordered_json;

// Runs fn over each line of `path`, each a JSON value; stops at the first error.
Status ForEachJsonLine(const std::string& path, const std::function<Status(const ordered_json&)>& fn) {
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    ordered_json j = ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return InvalidArgument("%s:%d: not valid JSON", path.c_str(), line_no);
    Status s = fn(j);
    if (!s.ok()) return s.WithContext(path + ":" + std::to_string(line_no));
  }
  return Status::Ok();
}

struct TokenizeFlags {
  std::string model = "default";
  std::string text;
  std::string lines;
  bool ids_only = false;
  bool special = false;
  bool add_special = false;
};

int Tokenize(const TokenizeFlags& f) {
  auto tok = TokenizerHandle::Load(f.model);
  if (!tok.ok()) return PrintError(tok.status());
  if (!f.lines.empty()) {
    Status s = ForEachJsonLine(f.lines, [&](const ordered_json& j) -> Status {
      if (!j.is_string()) return InvalidArgument("each line must be a JSON string");
      KILN_ASSIGN_OR_RETURN(auto ids, (*tok)->Encode(j.get<std::string>(), f.add_special, f.special));
      PrintJsonLine(ids);
      return Status::Ok();
    });
    return s.ok() ? 0 : PrintError(s);
  }
  auto ids = (*tok)->Encode(f.text, f.add_special, f.special);
  if (!ids.ok()) return PrintError(ids.status());
  if (f.ids_only) {
    PrintJsonLine(*ids);
  } else {
    ordered_json out = ordered_json::array();
    for (int32_t id : *ids) out.push_back({{"id", id}, {"piece", (*tok)->Piece(id)}});
    PrintJsonLine(out);
  }
  return 0;
}

Status ParseIdArray(const ordered_json& j, std::vector<int32_t>* ids) {
  if (!j.is_array()) return InvalidArgument("expected a JSON array of token ids");
  for (const auto& v : j) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
      return InvalidArgument("token ids must be non-negative integers");
    }
    ids->push_back(v.get<int32_t>());
  }
  return Status::Ok();
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, Handler* handler) {
  auto f = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "text → token ids (JSON)");
  cmd->add_option("-m,--model", f->model, "model, HF folder or tokenizer.json");
  cmd->add_option("text", f->text, "text to tokenize");
  cmd->add_option("--lines", f->lines, "file of JSON strings, one per line → one JSON id array per line");
  cmd->add_flag("--ids", f->ids_only, "print ids only (default: ids with their pieces)");
  cmd->add_flag("--special", f->special, "parse special-token text");
  cmd->add_flag("--add-special", f->add_special, "add BOS/EOS as the tokenizer's config says");
  cmd->callback([f, handler] { *handler = [f] { return Tokenize(*f); }; });
}

void AddDetokenizeCommand(CLI::App& app, Handler* handler) {
  struct Flags { std::string model = "default"; std::string ids; std::string lines; };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("detokenize", "token ids → text");
  cmd->add_option("-m,--model", f->model, "model, HF folder or tokenizer.json");
  cmd->add_option("ids", f->ids, "token ids, e.g. \"[1, 2, 3]\" or 1,2,3");
  cmd->add_option("--lines", f->lines, "file of JSON id arrays, one per line → one JSON string per line");
  cmd->callback([f, handler] {
    *handler = [f] {
      auto tok = TokenizerHandle::Load(f->model);
      if (!tok.ok()) return PrintError(tok.status());
      if (!f->lines.empty()) {
        Status s = ForEachJsonLine(f->lines, [&](const ordered_json& j) -> Status {
          std::vector<int32_t> ids;
          KILN_RETURN_IF_ERROR(ParseIdArray(j, &ids));
          for (int32_t id : ids) {
            if (id >= (*tok)->VocabSize()) return InvalidArgument("token id %d out of range", id);
          }
          PrintJsonLine((*tok)->Decode(ids));
          return Status::Ok();
        });
        return s.ok() ? 0 : PrintError(s);
      }
      auto ids = ParseIds(f->ids);
      if (!ids.ok()) return PrintError(ids.status());
      for (int32_t id : *ids) {
        if (id >= (*tok)->VocabSize()) return PrintError(InvalidArgument("token id %d out of range", id));
      }
      std::string text = (*tok)->Decode(*ids);
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    };
  });
}

void AddTemplateCommand(CLI::App& app, Handler* handler) {
  struct Flags { std::string model = "default"; std::string messages; std::string tools; bool no_gen = false; };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("template", "render the model's chat template");
  cmd->add_option("-m,--model", f->model, "model, HF folder or tokenizer.json");
  cmd->add_option("--messages", f->messages, "JSON file with an OpenAI-style messages array")->required();
  cmd->add_option("--tools", f->tools, "JSON file with a tools array");
  cmd->add_flag("--no-generation-prompt", f->no_gen, "do not add the assistant prompt");
  cmd->callback([f, handler] {
    *handler = [f] {
      auto messages = ReadFile(f->messages);
      if (!messages.ok()) return PrintError(messages.status());
      std::string tools;
      if (!f->tools.empty()) {
        auto t = ReadFile(f->tools);
        if (!t.ok()) return PrintError(t.status());
        tools = *t;
      }
      auto tok = TokenizerHandle::Load(f->model);
      if (!tok.ok()) return PrintError(tok.status());
      auto text = (*tok)->ApplyChatTemplate(*messages, tools, !f->no_gen);
      if (!text.ok()) return PrintError(text.status());
      std::fwrite(text->data(), 1, text->size(), stdout);
      return 0;
    };
  });
}

}  // namespace kiln::cli
