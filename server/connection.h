// The TCP connections behind HTTP requests: a listening socket, a bounded pool of connection
// threads, and the loop that serves one accepted socket (Boost.Beast parses each request and
// writes each response; this file owns the socket, so deadlines and hang-ups are plain poll()s
// on it). See docs/server.md ("Connections").
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http_message.h"
#include "kiln/serving.h"  // Status

namespace kiln::server {

// Header fields a request may carry, and bytes of request line + header fields; more → 431.
constexpr size_t kMaxHeaderFields = 128;
constexpr size_t kMaxHeaderBytes = 64 << 10;
// Requests served on one keep-alive connection; the last response says "Connection: close".
constexpr int kMaxRequestsPerConnection = 100;

struct ConnectionLimits {
  size_t max_body_bytes = 8 << 20;  // larger → 413
  int read_timeout_s = 10;   // whole request (line + header fields + body) from its first byte
  int idle_timeout_s = 5;    // keep-alive wait for the next request (and for the first one)
  int write_timeout_s = 30;  // one blocked write
  int max_connections = 144; // served at once; more are answered 503 and closed
};

// Shared by the connections of one listener: the shutdown state and the counters.
// Thread-safe (atomics).
struct ConnectionShared {
  using Clock = std::chrono::steady_clock;
  // Draining (shutdown): connections waiting for or reading a request close at once; a
  // request read completely is refused kShuttingDown; after hard_deadline every write fails.
  std::atomic<bool> draining{false};
  std::atomic<Clock::rep> hard_deadline{Clock::time_point::max().time_since_epoch().count()};
  std::atomic<int64_t> open{0};           // accepted sockets not yet closed
  std::atomic<int64_t> rejected{0};       // over max_connections
  std::atomic<int64_t> read_timeouts{0};  // 408s
  std::atomic<int64_t> idle_closed{0};    // keep-alive connections closed for idling

  bool PastHardDeadline() const {
    return Clock::now().time_since_epoch().count() >= hard_deadline.load();
  }
};

// Serves one accepted (non-blocking) socket until it closes, then closes it: reads requests,
// hands them to `handler` (or refuses them, see Refusal), writes the responses, keeps the
// connection alive between requests while the client wants it and idles at most
// idle_timeout_s. With over_capacity every request is refused kOverCapacity.
void ServeConnection(int fd, bool over_capacity, const ConnectionLimits& limits,
                     ConnectionShared& shared, HttpHandler& handler);

// Threads started on demand up to a maximum and then kept; tasks queue when all are busy.
// Join() runs the queued tasks, then ends the threads.
class ThreadPool {
 public:
  explicit ThreadPool(size_t max_threads) : max_threads_(max_threads) {}
  ~ThreadPool() { Join(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  void Post(std::function<void()> task);
  size_t queued() const;
  void Join();

 private:
  void Work();
  const size_t max_threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

// The listening socket and the accept loop. Each accepted connection gets one thread of a
// pool of limits.max_connections (so it never waits in a queue); connections beyond that are
// served by two more threads that answer every request 503 and close.
class Listener {
 public:
  Listener(ConnectionLimits limits, HttpHandler& handler);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds host:port (port 0: any free port) and listens. Unavailable on failure.
  Status Bind(const std::string& host, int port);
  int port() const { return port_; }
  // Accepts until Drain(), then waits for every connection to close. Blocking.
  void Run();
  // Any thread. Stops accepting at once (new connections are refused) and drains the open
  // ones (ConnectionShared::draining); every write fails after hard_deadline.
  void Drain(std::chrono::steady_clock::time_point hard_deadline);

  const ConnectionShared& shared() const { return shared_; }

 private:
  void Accept(int fd);

  ConnectionLimits limits_;
  HttpHandler& handler_;
  ConnectionShared shared_;
  std::mutex listen_mu_;  // listen_fd_ between Drain's shutdown and Run's close
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> active_{0};  // connections held by workers_
  ThreadPool workers_, rejects_;
};

}  // namespace kiln::server
