// The TCP connections behind HTTP requests. cpp-httplib 0.11 neither gives handlers their socket
// nor bounds how long a client may take to send a request (its read timeout is per read, so a
// client sending a byte a second holds a worker forever), so this file finds the sockets among
// the process's descriptors and enforces the deadlines itself.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace kiln::server {

// One accepted socket: its descriptor and its inode. The inode names the socket itself while it
// lives; the peer's address and port do not (a client may close a connection and open the next
// one from the same port before anyone notices the first is gone).
struct ConnectionId {
  int fd = -1;
  ino_t ino = 0;
  bool known() const { return fd >= 0 && ino != 0; }
};

// The accepted socket whose local port is local_port and whose peer is remote_addr:remote_port
// (as cpp-httplib reports them), found among this process's descriptors; unknown if none. At
// most one open socket has that address pair, so while a request's handler runs (cpp-httplib
// closes the socket afterwards) this is the socket the request came on.
ConnectionId FindConnection(const std::string& remote_addr, int remote_port, int local_port);
// True when id still names the same open socket (its descriptor may have been closed and reused).
bool SameConnection(const ConnectionId& id);
// Ends the connection after what was written to it so far (FIN after the queued bytes; the
// worker's next read sees the end). cpp-httplib 0.11 keeps a connection open after a response
// that says "Connection: close" when the client asked for keep-alive; this closes it.
void EndConnection(const ConnectionId& id);

// True when the peer closed or reset the connection (FIN/RST seen), without reading data.
bool PeerHungUp(int fd);

// The listening socket bound to local_port (and its inode), or -1.
int FindListeningSocket(int local_port, ino_t* ino);
// Stops new connections at once: shutting a listening socket down makes a blocked accept()
// fail, so cpp-httplib's listen loop closes the socket and ends (Server::stop() would also end
// every streaming response mid-way, which a graceful shutdown must not do). False when fd is
// no longer that socket.
bool ShutDownListeningSocket(int fd, ino_t ino);

struct ConnectionLimits {
  int local_port = 0;        // the server's port: its accepted sockets are the connections
  int read_timeout_s = 10;   // whole request (line + headers + body) from its first byte
  int idle_timeout_s = 5;    // keep-alive wait for the next request
};

// Watches every accepted connection of one server (a thread scanning the process's sockets
// every kScanInterval) and closes those that break a deadline:
//  - reading a request (bytes arrived since the last response, handler not started) for longer
//    than read_timeout_s → a 408 response, then the connection is shut down;
//  - idle (no request bytes since the last response or the accept) for longer than
//    idle_timeout_s + 1 s (cpp-httplib's own keep-alive limit is idle_timeout_s; this catches a
//    request trickled in before the previous response was logged);
//  - while draining (shutdown): every connection not in a handler at once, all of them after
//    the hard deadline.
// A connection is "in a handler" between Busy() and Done() for its socket (ConnectionId: the
// socket's inode, never the peer's port, which a new connection may reuse). Thread-safe.
class ConnectionWatchdog {
 public:
  explicit ConnectionWatchdog(ConnectionLimits limits);
  ~ConnectionWatchdog();  // stops and joins the thread
  ConnectionWatchdog(const ConnectionWatchdog&) = delete;
  ConnectionWatchdog& operator=(const ConnectionWatchdog&) = delete;

  void Start(int local_port);  // after the port is known (bind); starts the thread
  // A handler started on a request of this socket (its body has been read).
  void Busy(const ConnectionId& id);
  // The response on this socket was written; the connection waits for its next request.
  void Done(const ConnectionId& id);
  // Shutdown: closes idle and half-read connections now, every connection after hard_deadline.
  void Drain(std::chrono::steady_clock::time_point hard_deadline);

  int64_t read_timeouts() const { return read_timeouts_.load(); }
  int64_t idle_closed() const { return idle_closed_.load(); }
  int64_t open_connections() const { return open_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Conn {
    int fd = -1;               // cpp-httplib's descriptor (from Busy or the last scan)
    Clock::time_point since;   // accept (first seen) or the last response
    bool scanned = false;      // a scan has seen the socket (else Busy made the entry)
    bool busy = false;
    bool killed = false;
    bool baseline_known = false;  // bytes_baseline is valid
    uint64_t bytes_baseline = 0;  // bytes received up to `since`
    bool reading = false;         // request bytes arrived after `since`
    Clock::time_point reading_since;
  };
  void Run();
  void Scan();

  ConnectionLimits limits_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool draining_ = false;
  Clock::time_point hard_deadline_;
  std::map<ino_t, Conn> conns_;  // by socket inode
  std::atomic<int64_t> read_timeouts_{0}, idle_closed_{0}, open_{0};
  std::thread thread_;
};

}  // namespace kiln::server
