// kiln's OpenAI-compatible HTTP server: routes, auth, limits, SSE streaming (HTTP/1.1 by
// Boost.Beast in connection.cc). Owns its listening socket and connection threads; talks to
// the engine only through ServingEngine (any thread). One instance serves one model.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/serving.h"

namespace kiln::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                        // 0 → any free port (see HttpServer::port())
  std::string api_key;                    // "" → no auth
  bool cors = false;                      // Access-Control-Allow-Origin: * when true
  std::string model_id;                   // the id /v1/models lists; "" → from the model path
  std::vector<std::string> model_aliases; // other names requests may use (e.g. the -m argument)
  size_t max_body_bytes = 8 << 20;        // larger bodies → 413
  int max_concurrent = 128;               // generation requests in flight; more → 429
  int max_connections = 0;                // open connections (one HTTP thread each); more get
                                          // 503 at once; 0 → max_concurrent + 16
  int read_timeout_s = 10;                // whole request (line + headers + body) from its
                                          // first byte; then 408 and closed
  int idle_timeout_s = 5;                 // keep-alive connection idle between requests
  int write_timeout_s = 30;               // one blocked write to a client
  int request_timeout_s = 600;            // whole generation; then cancelled
  int stall_timeout_s = 120;              // a started stream with no event this long (the
                                          // engine stuck on it) gets an error event, [DONE]
                                          // and is cancelled
  int shutdown_grace_s = 3;               // Stop(): in-flight requests may finish this long
  int max_n = 16;
  int max_context = 0;                    // tokens per sequence (prompt + max_tokens); 0 → engine's
};

class HttpServer {
 public:
  HttpServer(ServingEngine& engine, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket; with port 0 picks a free port. Unavailable on failure.
  Status Bind();
  int port() const { return port_; }
  const std::string& model_id() const { return model_id_; }
  // Serves until Stop(). Blocking.
  void Run();
  // Any thread. Stops accepting connections at once, answers new requests on open connections
  // 503, closes idle ones, lets in-flight requests finish for shutdown_grace_s, then cancels
  // them (a stream gets an error event with code "server_shutdown" and [DONE]; a non-streaming
  // request a 503) and closes every connection a second later. Run() returns when the last
  // HTTP thread is done, so within about shutdown_grace_s + 1.5 s.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::string model_id_;
};

// Constant-time comparison of a presented key with the configured one (length leaks only
// through the loop bound of the longer string).
bool ApiKeyMatches(const std::string& presented, const std::string& expected);

}  // namespace kiln::server
