// Socket lookup, hang-up detection and the connection watchdog (see connection.h).
#include "connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_received (glibc's lacks it)
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace kiln::server {
namespace {

// Numeric address and port of a socket address.
bool AddrPort(const sockaddr_storage& ss, std::string* addr, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    *port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  *addr = buf;
  return true;
}

// An IPv4-mapped IPv6 address ("::ffff:1.2.3.4") equals its IPv4 spelling.
bool SameAddress(const std::string& a, const std::string& b) {
  constexpr std::string_view kMapped = "::ffff:";
  auto strip = [&](const std::string& s) {
    return s.starts_with(kMapped) ? s.substr(kMapped.size()) : s;
  };
  return strip(a) == strip(b);
}

// Calls fn(fd, inode, local port, peer address, peer port) for every connected socket.
template <typename Fn>
void ForEachConnectedSocket(Fn fn) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;  // listening or unconnected sockets have no peer
    }
    std::string local_addr, peer_addr;
    int lport = -1, pport = -1;
    if (!AddrPort(local, &local_addr, &lport) || !AddrPort(peer, &peer_addr, &pport)) continue;
    if (fn(static_cast<int>(fd), st.st_ino, lport, peer_addr, pport)) break;
  }
  closedir(dir);
}

// True when fd still is the socket with inode ino (it may have been closed and reused).
bool SameSocket(int fd, ino_t ino) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino;
}

// True when request bytes sit unread in the kernel's receive queue: the server is behind
// (its worker not scheduled yet on a starved machine), not the client, so no read timeout.
bool UnreadBytesWaiting(int fd) {
  int unread = 0;
  return ioctl(fd, FIONREAD, &unread) == 0 && unread > 0;
}

// Bytes the peer has sent on the connection so far (TCP_INFO).
bool BytesReceived(int fd, uint64_t* bytes) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
      len < offsetof(tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received) {
    return false;
  }
  *bytes = info.tcpi_bytes_received;
  return true;
}

// Sends `response` (if any, best effort, never blocking) and shuts the connection down, which
// wakes the cpp-httplib worker blocked reading it. Works on a duplicate of the descriptor that
// is checked to still be the same socket, so a descriptor reused meanwhile is never touched.
void ShutDownSocket(int fd, ino_t ino, std::string_view response) {
  const int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return;
  if (SameSocket(dup_fd, ino)) {
    if (!response.empty()) send(dup_fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(dup_fd, SHUT_RDWR);
  }
  close(dup_fd);
}

std::string TimeoutResponse() {
  const std::string body =
      R"J({"error":{"message":"the request was not received in time (request read timeout)",)J"
      R"J("type":"invalid_request_error","param":null,"code":"request_timeout"}})J";
  return "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

constexpr auto kScanInterval = std::chrono::milliseconds(200);

}  // namespace

ConnectionId FindConnection(const std::string& remote_addr, int remote_port, int local_port) {
  ConnectionId found;
  ForEachConnectedSocket([&](int fd, ino_t ino, int lport, const std::string& peer_addr, int pport) {
    if (lport == local_port && pport == remote_port && SameAddress(peer_addr, remote_addr)) {
      found = {.fd = fd, .ino = ino};
      return true;
    }
    return false;
  });
  return found;
}

bool SameConnection(const ConnectionId& id) { return id.known() && SameSocket(id.fd, id.ino); }

void EndConnection(const ConnectionId& id) {
  if (id.known()) ShutDownSocket(id.fd, id.ino, "");
}

int FindListeningSocket(int local_port, ino_t* ino) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st;
    int listening = 0;
    socklen_t len = sizeof listening;
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    std::string addr;
    int port = -1;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode) ||
        getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        !listening ||
        getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        !AddrPort(local, &addr, &port) || port != local_port) {
      continue;
    }
    found = static_cast<int>(fd);
    *ino = st.st_ino;
    break;
  }
  closedir(dir);
  return found;
}

bool ShutDownListeningSocket(int fd, ino_t ino) {
  if (!SameSocket(fd, ino)) return false;
  return shutdown(fd, SHUT_RDWR) == 0;
}

bool PeerHungUp(int fd) {
  if (fd < 0) return false;
  pollfd p{.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

ConnectionWatchdog::ConnectionWatchdog(ConnectionLimits limits) : limits_(limits) {}

ConnectionWatchdog::~ConnectionWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ConnectionWatchdog::Start(int local_port) {
  limits_.local_port = local_port;
  thread_ = std::thread([this] { Run(); });
}

void ConnectionWatchdog::Busy(const ConnectionId& id) {
  if (!id.known()) return;  // the socket is gone already: nothing to watch
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = conns_.try_emplace(id.ino);
  Conn& c = it->second;
  if (fresh) {
    c.fd = id.fd;
    c.since = Clock::now();
  }
  c.busy = true;
}

void ConnectionWatchdog::Done(const ConnectionId& id) {
  if (!id.known()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = conns_.find(id.ino);
  if (it == conns_.end()) return;  // closed, and a scan has dropped it
  if (!SameSocket(id.fd, id.ino)) {  // closed while its handler ran
    conns_.erase(it);
    return;
  }
  Conn& c = it->second;
  c.busy = false;
  c.reading = false;
  c.since = Clock::now();
  // What the peer sent so far belongs to this request (or to one it pipelined: then only the
  // idle deadline applies to that one).
  c.baseline_known = BytesReceived(id.fd, &c.bytes_baseline);
}

void ConnectionWatchdog::Drain(Clock::time_point hard_deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    hard_deadline_ = hard_deadline;
  }
  cv_.notify_all();
}

void ConnectionWatchdog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    Scan();
    lock.lock();
    cv_.wait_for(lock, kScanInterval, [&] { return stop_; });
  }
}

void ConnectionWatchdog::Scan() {
  struct Live {
    int fd;
    ino_t ino;
    uint64_t bytes = 0;
    bool bytes_ok = false;
  };
  std::vector<Live> live;
  ForEachConnectedSocket([&](int fd, ino_t ino, int lport, const std::string&, int) {
    if (lport != limits_.local_port) return false;
    Live l{fd, ino};
    l.bytes_ok = BytesReceived(fd, &l.bytes);
    live.push_back(std::move(l));
    return false;
  });
  struct Kill {
    int fd;
    ino_t ino;
    bool timeout;  // send a 408 first
  };
  std::vector<Kill> kills;
  const Clock::time_point now = Clock::now();
  const auto read_limit = std::chrono::seconds(limits_.read_timeout_s);
  const auto idle_limit = std::chrono::seconds(limits_.idle_timeout_s + 1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<ino_t, Conn> seen;
    for (const Live& l : live) {
      auto it = conns_.find(l.ino);
      Conn c;
      if (it != conns_.end()) c = it->second;
      if (!c.scanned) {  // first seen
        c.scanned = true;
        if (it == conns_.end()) c.since = now;  // else Busy or Done set it
        if (!c.baseline_known) {  // bytes so far belong to its first request
          c.baseline_known = true;
          c.bytes_baseline = 0;
        }
      }
      c.fd = l.fd;
      if (!c.baseline_known && l.bytes_ok) {
        c.baseline_known = true;
        c.bytes_baseline = l.bytes;
      }
      if (!c.busy && !c.reading && l.bytes_ok && l.bytes > c.bytes_baseline) {
        c.reading = true;
        c.reading_since = now;
      }
      if (!c.killed) {
        const bool hard = draining_ && now >= hard_deadline_;
        if (hard || (draining_ && !c.busy)) {
          kills.push_back({l.fd, l.ino, false});
          c.killed = true;
        } else if (!c.busy && c.reading && now - c.reading_since > read_limit &&
                   !UnreadBytesWaiting(l.fd)) {
          kills.push_back({l.fd, l.ino, true});
          c.killed = true;
          ++read_timeouts_;
        } else if (!c.busy && !c.reading && now - c.since > idle_limit) {
          kills.push_back({l.fd, l.ino, false});
          c.killed = true;
          ++idle_closed_;
        }
      }
      seen[l.ino] = c;
    }
    // A socket accepted after this scan's snapshot that a handler has named already: kept
    // while it is open. Every other socket the snapshot lacks is closed.
    for (auto& [ino, c] : conns_) {
      if (!c.scanned && !seen.count(ino) && SameSocket(c.fd, ino)) seen[ino] = c;
    }
    conns_.swap(seen);
    open_.store(static_cast<int64_t>(live.size()));
  }
  static const std::string kTimeout = TimeoutResponse();
  for (const Kill& k : kills) ShutDownSocket(k.fd, k.ino, k.timeout ? kTimeout : "");
}

}  // namespace kiln::server
