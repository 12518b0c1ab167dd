// `kiln serve`: the OpenAI-compatible HTTP server (server/) on a ServingEngine.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "commands.h"
#include "http_server.h"
#include "json_out.h"
#include "kiln/serving.h"

namespace kiln::cli {
namespace {

struct ServeFlags {
  ServingOptions engine;
  server::ServerOptions http;
  std::string mode = "server";
  size_t max_body_mb = 8;
};

StatusOr<EngineMode> ParseMode(const std::string& mode) {
  if (mode == "local") return EngineMode::kLocal;
  if (mode == "interactive") return EngineMode::kInteractive;
  if (mode == "server") return EngineMode::kServer;
  return InvalidArgument("--mode must be local, interactive or server, got '%s'", mode.c_str());
}

int Serve(ServeFlags f) {
  auto mode = ParseMode(f.mode);
  if (!mode.ok()) return PrintError(mode.status());
  f.engine.mode = *mode;
  if (f.http.api_key.empty()) {
    if (const char* key = std::getenv("KILN_API_KEY")) f.http.api_key = key;
  }
  f.http.max_body_bytes = f.max_body_mb << 20;
  f.http.model_aliases.push_back(f.engine.model);
  // Block the stop signals in every thread (the engine's and the server's inherit this mask);
  // one thread waits for them and stops the server cleanly.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto engine = ServingEngine::Start(f.engine);
  if (!engine.ok()) return PrintError(engine.status());
  std::string config = (*engine)->DescribeConfig();
  server::HttpServer http(**engine, f.http);
  Status bound = http.Bind();
  if (!bound.ok()) return PrintError(bound);
  std::fprintf(stderr, "%s\n", config.c_str());
  std::fprintf(stderr, "kiln serve: model '%s'%s%s\n", http.model_id().c_str(),
               f.http.api_key.empty() ? "" : ", API key required",
               f.http.cors ? ", CORS enabled" : "");
  // The listen line is on stdout so scripts (and the tests) can read the port.
  std::printf("listening on http://%s:%d\n", f.http.host.c_str(), http.port());
  std::fflush(stdout);
  // First SIGINT/SIGTERM: graceful stop (docs/server.md); a second one exits at once.
  std::atomic<bool> served{false};
  std::thread waiter([&] {
    for (int n_signals = 0;; ++n_signals) {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      if (served.load()) return;
      if (n_signals > 0) {
        std::fprintf(stderr, "kiln serve: signal %d again, exiting now\n", sig);
        std::_Exit(128 + sig);
      }
      std::fprintf(stderr, "kiln serve: signal %d, shutting down (grace %d s)\n", sig,
                   f.http.shutdown_grace_s);
      http.Stop();
    }
  });
  http.Run();
  // Run() also returns when the socket fails; wake the waiter so it can be joined.
  served.store(true);
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, Handler* handler) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (docs/server.md)");
  cmd->add_option("-m,--model", f->engine.model, "GGUF file, HF folder, hf://… or 'default'");
  cmd->add_option("--host", f->http.host, "address to bind (default 127.0.0.1)");
  cmd->add_option("--port", f->http.port, "port (0 = any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--mode", f->mode, "memory/batching preset: local | interactive | server");
  cmd->add_option("--api-key", f->http.api_key, "require 'Authorization: Bearer KEY' (or env KILN_API_KEY)");
  cmd->add_option("--max-sequences", f->engine.max_sequences, "sequences decoded together (0 = preset)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-context", f->engine.max_context, "tokens per sequence (0 = preset)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-t,--threads", f->engine.n_threads, "threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefill-chunk", f->engine.prefill_chunk,
                  "prompt tokens per engine step, shared by the prompts being prefilled; running "
                  "streams decode between chunks (0 = preset: 256 local, 512 interactive/server)")
      ->check(CLI::NonNegativeNumber);
  AddSpeculateOptions(cmd, &f->engine.speculate);
  cmd->add_flag("--cors", f->http.cors, "allow cross-origin requests (Access-Control-Allow-Origin: *)");
  cmd->add_option("--served-model-name", f->http.model_id, "model id in /v1/models (default: file name)");
  cmd->add_option("--max-concurrent", f->http.max_concurrent, "generation requests in flight; more get 429")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-body-mb", f->max_body_mb, "largest request body in MiB; more get 413")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--request-timeout", f->http.request_timeout_s, "seconds before a request is cancelled")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--stall-timeout", f->http.stall_timeout_s,
                  "seconds a started stream may go without a token; then an error event and "
                  "cancelled (default 120)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--read-timeout", f->http.read_timeout_s,
                  "seconds to receive a whole request (line, headers, body); then 408 (default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--idle-timeout", f->http.idle_timeout_s,
                  "seconds a keep-alive connection may wait for its next request (default 5)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-connections", f->http.max_connections,
                  "open connections; more get 503 (default max-concurrent + 16)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--shutdown-grace", f->http.shutdown_grace_s,
                  "on SIGTERM/SIGINT, seconds in-flight requests may finish (default 3)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([f, handler] { *handler = [f] { return Serve(*f); }; });
}

}  // namespace kiln::cli
