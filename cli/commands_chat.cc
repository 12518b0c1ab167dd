// `kiln chat`: a streaming chat REPL on the serving engine. Line editing and history through
// libedit when stdin is a terminal; plain line reading when it is a pipe (scripts, tests).
#include <editline/readline.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "json_out.h"
#include "kiln/serving.h"

namespace kiln::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};

void OnSigint(int) { g_interrupted = true; }

struct ChatFlags {
  ServingOptions engine;
  SamplingOptions sampling;
  std::string system;
  uint64_t seed = 0;
  bool has_seed = false;
};

struct TurnStats {
  int32_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
  int32_t drafted_tokens = 0, accepted_tokens = 0;
  double prompt_s = 0, gen_s = 0;
  std::string finish_reason;
};

constexpr char kHelp[] =
    "Commands:\n"
    "  /help                 this text\n"
    "  /reset                forget the conversation (keeps the system prompt)\n"
    "  /system TEXT          set the system prompt (empty TEXT removes it)\n"
    "  /set k=v ...          temperature, top_p, top_k, min_p, max_tokens, seed,\n"
    "                        repetition_penalty, presence_penalty, frequency_penalty\n"
    "  /stats                prompt and generation speed of the last answer, cached and\n"
    "                        speculated tokens\n"
    "  /save FILE            write the conversation as JSON\n"
    "  /exit                 quit (also Ctrl-D)\n"
    "Multi-line input: end a line with \\ to continue it, or wrap text in \"\"\" lines.\n"
    "Ctrl-C stops the current answer.\n";

// Reads one logical message: backslash continuations and """ blocks. nullopt at EOF.
class InputReader {
 public:
  explicit InputReader(bool tty) : tty_(tty) {
    if (tty_) {
      const char* home = std::getenv("HOME");
      if (home) history_path_ = std::string(home) + "/.cache/kiln/chat_history";
      using_history();
      if (!history_path_.empty()) read_history(history_path_.c_str());
    }
  }
  ~InputReader() {
    if (tty_ && !history_path_.empty()) write_history(history_path_.c_str());
  }

  std::optional<std::string> ReadMessage() {
    std::optional<std::string> line = ReadLine("> ");
    if (!line) return std::nullopt;
    std::string text;
    if (*line == "\"\"\"") {
      while (true) {
        std::optional<std::string> more = ReadLine("... ");
        if (!more || *more == "\"\"\"") break;
        text += (text.empty() ? "" : "\n") + *more;
      }
    } else {
      text = *line;
      while (!text.empty() && text.back() == '\\') {
        text.back() = '\n';
        std::optional<std::string> more = ReadLine("... ");
        if (!more) break;
        text += *more;
      }
    }
    if (tty_ && !text.empty()) add_history(text.c_str());
    return text;
  }

 private:
  std::optional<std::string> ReadLine(const char* prompt) {
    if (!tty_) {
      std::string line;
      if (!std::getline(std::cin, line)) return std::nullopt;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    while (true) {
      g_interrupted = false;
      // Ctrl-C at the prompt drops the line instead of ending the program.
      struct sigaction sa = {}, old = {};
      sa.sa_handler = OnSigint;
      sigaction(SIGINT, &sa, &old);
      char* raw = readline(prompt);
      sigaction(SIGINT, &old, nullptr);
      if (raw) {
        std::string line(raw);
        std::free(raw);
        return line;
      }
      if (!g_interrupted) return std::nullopt;  // Ctrl-D
      std::printf("\n");                        // Ctrl-C at the prompt: drop the line
    }
  }

  bool tty_;
  std::string history_path_;
};

class ChatSession {
 public:
  ChatSession(ServingEngine& engine, ChatFlags flags)
      : engine_(engine), sampling_(flags.sampling), system_(flags.system) {}

  // Returns false when the session should end.
  bool Handle(const std::string& input) {
    if (input.empty()) return true;
    if (input[0] == '/') return Command(input);
    Answer(input);
    return true;
  }

 private:
  bool Command(const std::string& input) {
    std::istringstream in(input);
    std::string cmd;
    in >> cmd;
    std::string rest;
    std::getline(in, rest);
    if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
    if (cmd == "/exit" || cmd == "/quit") return false;
    if (cmd == "/help") {
      std::printf("%s", kHelp);
    } else if (cmd == "/reset") {
      messages_ = json::array();
      std::printf("(conversation cleared)\n");
    } else if (cmd == "/system") {
      system_ = rest;
      std::printf(rest.empty() ? "(system prompt removed)\n" : "(system prompt set)\n");
    } else if (cmd == "/set") {
      Set(rest);
    } else if (cmd == "/stats") {
      PrintStats();
    } else if (cmd == "/save") {
      Save(rest);
    } else {
      std::printf("unknown command %s; /help lists the commands\n", cmd.c_str());
    }
    std::fflush(stdout);
    return true;
  }

  void Set(const std::string& args) {
    std::istringstream in(args);
    std::string kv;
    while (in >> kv) {
      size_t eq = kv.find('=');
      std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0') {
        std::printf("/set: '%s' is not key=number\n", kv.c_str());
        continue;
      }
      SamplingOptions& s = sampling_;
      if (key == "temperature") s.temperature = v;
      else if (key == "top_p") s.top_p = v;
      else if (key == "top_k") s.top_k = static_cast<int32_t>(v);
      else if (key == "min_p") s.min_p = v;
      else if (key == "max_tokens") s.max_tokens = static_cast<int32_t>(v);
      else if (key == "seed") s.seed = static_cast<uint64_t>(v);
      else if (key == "repetition_penalty") s.repetition_penalty = v;
      else if (key == "presence_penalty") s.presence_penalty = v;
      else if (key == "frequency_penalty") s.frequency_penalty = v;
      else {
        std::printf("/set: unknown key '%s'\n", key.c_str());
        continue;
      }
      std::printf("(%s = %s)\n", key.c_str(), value.c_str());
    }
  }

  void PrintStats() const {
    if (last_.finish_reason.empty()) {
      std::printf("(no answer yet)\n");
      return;
    }
    double pp = last_.prompt_s > 0 ? (last_.prompt_tokens - last_.cached_tokens) / last_.prompt_s : 0;
    double tg = last_.gen_s > 0 && last_.completion_tokens > 1
                    ? (last_.completion_tokens - 1) / last_.gen_s : 0;
    std::printf("prompt: %d tokens (%d cached), %.2f s, %.1f tokens/s\n"
                "generation: %d tokens, %.2f s, %.1f tokens/s, finish: %s\n",
                last_.prompt_tokens, last_.cached_tokens, last_.prompt_s, pp,
                last_.completion_tokens, last_.gen_s, tg, last_.finish_reason.c_str());
    std::printf("speculation: %d of %d guessed tokens accepted\n", last_.accepted_tokens,
                last_.drafted_tokens);
  }

  void Save(const std::string& path) {
    if (path.empty()) {
      std::printf("/save: give a file name\n");
      return;
    }
    std::ofstream out(path);
    out << json{{"messages", Conversation()}}.dump(2, ' ', false, json::error_handler_t::replace)
        << "\n";
    std::printf(out ? "(saved to %s)\n" : "/save: cannot write %s\n", path.c_str());
  }

  json Conversation() const {
    json all = json::array();
    if (!system_.empty()) all.push_back({{"role", "system"}, {"content", system_}});
    for (const json& m : messages_) all.push_back(m);
    return all;
  }

  void Answer(const std::string& text) {
    messages_.push_back({{"role", "user"}, {"content", text}});
    std::string dumped = Conversation().dump(-1, ' ', false, json::error_handler_t::replace);
    auto prompt = engine_.ApplyChatTemplate(dumped, "", true);
    StatusOr<std::vector<int32_t>> ids = prompt.ok()
        ? engine_.Tokenize(*prompt, /*add_special=*/false, /*parse_special=*/true)
        : StatusOr<std::vector<int32_t>>(prompt.status());
    if (!ids.ok()) {
      messages_.erase(messages_.end() - 1);
      PrintError(ids.status());
      return;
    }
    CompletionRequest request;
    request.prompt_ids = std::move(*ids);
    request.sampling = sampling_;
    auto stream = engine_.Submit(std::move(request));
    if (!stream.ok()) {
      messages_.erase(messages_.end() - 1);
      PrintError(stream.status());
      return;
    }
    std::string answer = Stream(**stream);
    messages_.push_back({{"role", "assistant"}, {"content", answer}});
  }

  // Prints the answer as it streams; Ctrl-C cancels it.
  std::string Stream(RequestStream& stream) {
    g_interrupted = false;
    struct sigaction sa = {}, old = {};
    sa.sa_handler = OnSigint;
    sigaction(SIGINT, &sa, &old);
    Clock::time_point t0 = Clock::now(), t_first = t0;
    bool got_first = false, cancelled = false;
    std::string answer;
    last_ = {};
    for (bool done = false; !done;) {
      if (g_interrupted && !cancelled) {
        stream.Cancel();
        cancelled = true;
      }
      std::optional<StreamEvent> ev = stream.Next(std::chrono::milliseconds(50));
      if (!ev) continue;
      if (!ev->text.empty()) {
        if (!got_first) t_first = Clock::now();
        got_first = true;
        answer += ev->text;
        std::fwrite(ev->text.data(), 1, ev->text.size(), stdout);
        std::fflush(stdout);
      }
      if (ev->finish_reason) last_.finish_reason = *ev->finish_reason;
      if (ev->finish_reason == "error") std::fprintf(stderr, "\nkiln: error: %s", ev->error.c_str());
      if (ev->done) {
        done = true;
        last_.prompt_tokens = ev->usage.prompt_tokens;
        last_.completion_tokens = ev->usage.completion_tokens;
        last_.cached_tokens = ev->usage.cached_tokens;
        last_.drafted_tokens = ev->usage.drafted_tokens;
        last_.accepted_tokens = ev->usage.accepted_tokens;
      }
    }
    Clock::time_point t_end = Clock::now();
    sigaction(SIGINT, &old, nullptr);
    if (cancelled) last_.finish_reason = "interrupted";
    last_.prompt_s = std::chrono::duration<double>((got_first ? t_first : t_end) - t0).count();
    last_.gen_s = got_first ? std::chrono::duration<double>(t_end - t_first).count() : 0;
    std::printf(cancelled ? "\n[interrupted]\n" : "\n");
    std::fflush(stdout);
    return answer;
  }

  ServingEngine& engine_;
  SamplingOptions sampling_;
  std::string system_;
  json messages_ = json::array();
  TurnStats last_;
};

int Chat(ChatFlags f) {
  if (f.has_seed) f.sampling.seed = f.seed;
  auto engine = ServingEngine::Start(f.engine);
  if (!engine.ok()) return PrintError(engine.status());
  bool tty = isatty(STDIN_FILENO);
  if (tty) {
    std::fprintf(stderr, "%s\nkiln chat: /help for commands, Ctrl-D to quit\n",
                 (*engine)->DescribeConfig().c_str());
  }
  ChatSession session(**engine, f);
  InputReader reader(tty);
  while (std::optional<std::string> input = reader.ReadMessage()) {
    if (!session.Handle(*input)) break;
  }
  if (tty) std::printf("\n");
  return 0;
}

}  // namespace

void AddChatCommand(CLI::App& app, Handler* handler) {
  auto f = std::make_shared<ChatFlags>();
  f->engine.mode = EngineMode::kLocal;
  f->sampling.temperature = 0.7f;
  f->sampling.top_p = 0.95f;
  f->sampling.max_tokens = 1024;
  CLI::App* cmd = app.add_subcommand("chat", "interactive chat with the model's chat template");
  cmd->add_option("-m,--model", f->engine.model, "GGUF file, HF folder, hf://… or 'default'");
  cmd->add_option("-t,--threads", f->engine.n_threads, "threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-c,--ctx-size", f->engine.max_context, "tokens per conversation (0 = preset)")
      ->check(CLI::NonNegativeNumber);
  AddSpeculateOptions(cmd, &f->engine.speculate);
  cmd->add_option("--system", f->system, "system prompt");
  cmd->add_option("--temp", f->sampling.temperature, "temperature (0 = greedy)");
  cmd->add_option("--top-p", f->sampling.top_p, "top-p (1 = off)");
  cmd->add_option("--top-k", f->sampling.top_k, "top-k (0 = off)");
  cmd->add_option("-n,--max-tokens", f->sampling.max_tokens, "tokens per answer");
  cmd->add_option("--seed", f->seed, "sampling seed")->each([f](const std::string&) { f->has_seed = true; });
  cmd->callback([f, handler] { *handler = [f] { return Chat(*f); }; });
}

}  // namespace kiln::cli
