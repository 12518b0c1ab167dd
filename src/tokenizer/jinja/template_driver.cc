// kiln_template_driver: renders chat templates for tests/py/test_chat_template.py.
//   kiln_template_driver TEMPLATE_FILE CONTEXT_JSON_FILE   → prints the render
//   kiln_template_driver --batch                          → JSON lines on stdin:
//     {"template": "...", "vars": {...}, "now": EPOCH_SECONDS?} → {"ok": true, "text": "..."}
//                                                              or {"ok": false, "error": "..."}
// "vars" are all top-level variables (messages, tools, add_generation_prompt, …); "now" fixes
// strftime_now() to that UTC time.
#include <fstream>
#include <iostream>
#include <sstream>

#include "tokenizer/chat_template.h"

namespace {

nlohmann::ordered_json RenderOne(const nlohmann::ordered_json& req) {
  kiln::ChatTemplateOptions options;
  if (req.contains("now")) {
    std::time_t t = req["now"].get<int64_t>();
    options.clock = [t] {
      std::tm tm{};
      gmtime_r(&t, &tm);
      return tm;
    };
  }
  nlohmann::ordered_json out;
  auto tmpl = kiln::ChatTemplate::Parse(req.value("template", ""), options);
  if (!tmpl.ok()) {
    out["ok"] = false;
    out["error"] = tmpl.status().ToString();
    return out;
  }
  auto text = (*tmpl)->RenderWithVars(req.value("vars", nlohmann::ordered_json::object()));
  if (!text.ok()) {
    out["ok"] = false;
    out["error"] = text.status().ToString();
    return out;
  }
  out["ok"] = true;
  out["text"] = *text;
  return out;
}

std::string ReadFile(const char* path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--batch") {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      nlohmann::ordered_json req = nlohmann::ordered_json::parse(line, nullptr, false);
      nlohmann::ordered_json out;
      if (req.is_discarded() || !req.is_object()) {
        out["ok"] = false;
        out["error"] = "bad request line";
      } else {
        out = RenderOne(req);
      }
      std::cout << out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n"
                << std::flush;
    }
    return 0;
  }
  if (argc != 3) {
    std::cerr << "usage: kiln_template_driver TEMPLATE_FILE CONTEXT_JSON | --batch\n";
    return 2;
  }
  nlohmann::ordered_json req;
  req["template"] = ReadFile(argv[1]);
  nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(ReadFile(argv[2]), nullptr, false);
  if (ctx.is_discarded()) {
    std::cerr << "bad context JSON\n";
    return 2;
  }
  req["vars"] = ctx;
  nlohmann::ordered_json out = RenderOne(req);
  if (!out["ok"].get<bool>()) {
    std::cerr << out["error"].get<std::string>() << "\n";
    return 1;
  }
  std::cout << out["text"].get<std::string>();
  return 0;
}
