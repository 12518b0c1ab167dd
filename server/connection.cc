// Accepting and serving connections (see connection.h): Boost.Beast's request parser and
// response serializer over sockets this file owns, non-blocking, with every wait a bounded
// poll() so deadlines and the shutdown state are checked at least every kSlice.
#include "connection.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>
#include <string_view>

namespace kiln::server {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using Parser = http::request_parser<http::string_body>;

constexpr auto kSlice = 100ms;           // longest wait before the shutdown state is checked
constexpr size_t kReadChunk = 16 << 10;  // bytes asked of one recv
constexpr auto kLingerTime = 2s;         // after a closing response: reading what the client
                                         // still sends, so closing does not reset the answer
constexpr int kListenBacklog = 1024;     // accept queue (Linux caps it at net.core.somaxconn)
constexpr int kRejectThreads = 2;        // answer connections over the limit with 503
constexpr size_t kMaxQueuedRejects = 256;  // beyond: closed without an answer
constexpr size_t kMaxIovecs = 16;

int PollMs(Clock::duration left) {
  const Clock::duration wait = std::min<Clock::duration>(left, kSlice);
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait);
  return static_cast<int>(std::max<int64_t>(ms.count(), 0));
}

std::string Str(beast::string_view s) { return std::string(s.data(), s.size()); }

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Obsolete line folding (RFC 9112 §5.2: a field line continued on the next line, which
// starts with a space or tab). Beast accepts it and joins the lines; RFC 9112 lets a server
// refuse it instead, which kiln does (a proxy may have read the lines differently). `head` is
// the request line and field lines as received, through the empty line that ends them.
bool HasObsFold(std::string_view head) {
  for (size_t i = head.find("\r\n"); i != std::string_view::npos && i + 2 < head.size();
       i = head.find("\r\n", i + 2)) {
    if (head[i + 2] == ' ' || head[i + 2] == '\t') return true;
  }
  return false;
}

Refusal RefusalFor(const beast::error_code& ec) {
  if (ec == http::error::header_limit) return Refusal::kHeaderTooLarge;
  if (ec == http::error::body_limit) return Refusal::kBodyTooLarge;
  // Beast's words for a field line without a colon or with a non-token name (bad_field) and
  // for a value with a control character: NUL, DEL, … (bad_value).
  if (ec == http::error::bad_field || ec == http::error::bad_value) {
    return Refusal::kMalformedHeader;
  }
  return Refusal::kMalformedRequest;
}

// What RFC 9112 allows but kiln refuses, checked once the header is parsed.
std::optional<Refusal> CheckHead(const Parser::value_type& msg, std::string_view head,
                                 std::string* detail) {
  if (HasObsFold(head)) {
    *detail = "obsolete line folding (a field line starting with a space or tab)";
    return Refusal::kMalformedHeader;
  }
  const size_t n_fields = static_cast<size_t>(std::distance(msg.begin(), msg.end()));
  if (n_fields > kMaxHeaderFields) {
    *detail = StrFormat("too many header fields (%zu, at most %zu)", n_fields, kMaxHeaderFields);
    return Refusal::kHeaderTooLarge;
  }
  return std::nullopt;
}

HttpRequest ToRequest(Parser::value_type& msg) {
  HttpRequest req;
  req.method = msg.method() == http::verb::head ? "GET" : Str(msg.method_string());
  const std::string target = Str(msg.target());
  req.path = target.substr(0, target.find('?'));
  for (const auto& field : msg) {
    req.headers.emplace_back(Str(field.name_string()), Str(field.value()));
  }
  req.body = std::move(msg.body());
  return req;
}

template <class Body>
void SetHead(const HttpResponse& res, http::response<Body>* msg) {
  msg->result(static_cast<unsigned>(res.status));
  if (res.status == 499) msg->reason("Client Closed Request");  // nginx's; not in Beast's table
  for (const auto& [name, value] : res.headers) msg->insert(name, value);
  if (!res.content_type.empty()) msg->set(http::field::content_type, res.content_type);
}

// One accepted socket: reads requests, writes responses. Connection-thread only.
class Connection final : public BodyWriter {
 public:
  Connection(int fd, const ConnectionLimits& limits, ConnectionShared& shared)
      : fd_(fd), limits_(limits), shared_(shared) {}
  ~Connection() override {
    ::close(fd_);
    --shared_.open;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Serve(bool over_capacity, HttpHandler& handler);

  bool Write(std::string_view data) override {
    if (failed_) return false;
    if (data.empty()) return true;
    const net::const_buffer b(data.data(), data.size());
    return chunked_ ? Send(http::make_chunk(b)) : Send(b);
  }
  bool ClientGone() override {
    if (failed_) return true;
    pollfd p{.fd = fd_, .events = POLLIN | POLLRDHUP, .revents = 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

 private:
  enum class Read { kRequest, kRefused, kTimeout, kClosed };
  enum class Wait { kReady, kTimeout, kDraining };

  Wait WaitReadable(Clock::time_point deadline);
  bool Fill();  // one recv into buf_; false at the end of the stream or on an error
  Read ReadRequest(Parser& parser, Refusal* why, std::string* detail);
  bool SendResponse(HttpResponse& res, unsigned version, bool head_only);
  bool SendStream(HttpResponse& res, unsigned version);
  template <class Serializer>
  bool SendSerialized(Serializer& sr, bool header_only);
  template <class Buffers>
  bool Send(const Buffers& buffers);
  bool SendIov(iovec* iov, size_t n_iov);
  bool Fail() {
    failed_ = true;
    return false;
  }
  void LingeringClose();

  const int fd_;
  const ConnectionLimits& limits_;
  ConnectionShared& shared_;
  beast::flat_buffer buf_;  // received, not yet parsed (a pipelined request's start)
  bool failed_ = false;     // a send failed or timed out: nothing more goes out
  bool chunked_ = true;     // the streaming response being written uses chunks
};

void Connection::Serve(bool over_capacity, HttpHandler& handler) {
  for (int n_served = 0;; ++n_served) {
    if (buf_.size() == 0) {  // idle until the next request's first byte
      Wait w = WaitReadable(Clock::now() + std::chrono::seconds(limits_.idle_timeout_s));
      if (w == Wait::kTimeout) ++shared_.idle_closed;
      if (w != Wait::kReady || !Fill()) return;
      if (buf_.size() == 0) continue;  // woken without data
    }
    Parser parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(limits_.max_body_bytes);
    Refusal why{};
    std::string detail;
    const Read read = ReadRequest(parser, &why, &detail);
    if (read == Read::kClosed) return;
    HttpResponse res;
    if (read == Read::kTimeout) {
      ++shared_.read_timeouts;
      handler.Refuse(Refusal::kReadTimeout, "", res);
      res.close = true;
      SendResponse(res, 11, false);
      ::shutdown(fd_, SHUT_RDWR);  // a trickling client gets no more time: no lingering
      return;
    }
    const unsigned version = parser.is_header_done() ? parser.get().version() : 11;
    bool head_only = false;
    if (read == Read::kRefused) {
      handler.Refuse(why, detail, res);
      res.close = true;
    } else if (shared_.draining.load() || over_capacity) {
      handler.Refuse(over_capacity ? Refusal::kOverCapacity : Refusal::kShuttingDown, "", res);
      res.close = true;
    } else {
      Parser::value_type& msg = parser.get();
      head_only = msg.method() == http::verb::head;
      HttpRequest req = ToRequest(msg);
      req.client_gone = [this] { return ClientGone(); };
      handler.Handle(req, res);
      res.close = res.close || !msg.keep_alive() || shared_.draining.load() ||
                  n_served + 1 >= kMaxRequestsPerConnection;
    }
    if (!SendResponse(res, version, head_only)) return;
    if (res.close) return LingeringClose();
  }
}

Connection::Wait Connection::WaitReadable(Clock::time_point deadline) {
  for (;;) {
    if (shared_.draining.load()) return Wait::kDraining;
    const Clock::time_point now = Clock::now();
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    const int n = poll(&p, 1, PollMs(deadline - now));
    if (n > 0) return Wait::kReady;
    if (n < 0 && errno != EINTR) return Wait::kReady;  // let recv report the error
    if (Clock::now() >= deadline) return Wait::kTimeout;
  }
}

bool Connection::Fill() {
  const net::mutable_buffer space = buf_.prepare(kReadChunk);
  for (;;) {
    const ssize_t n = ::recv(fd_, space.data(), space.size(), 0);
    if (n > 0) {
      buf_.commit(static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);  // nothing yet: not an end
  }
}

// Feeds what arrives to Beast's parser until the request is complete. The deadline runs from
// the request's first byte (already in buf_); reading stops at once when the server drains.
Connection::Read Connection::ReadRequest(Parser& parser, Refusal* why, std::string* detail) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(limits_.read_timeout_s);
  std::string head;  // the request line and field lines as parsed, for HasObsFold
  for (;;) {
    if (buf_.size() > 0) {
      const bool in_head = !parser.is_header_done();
      beast::error_code ec;
      const size_t used = parser.put(buf_.data(), ec);
      if (in_head) head.append(static_cast<const char*>(buf_.data().data()), used);
      buf_.consume(used);
      if (ec && ec != http::error::need_more) {
        *why = RefusalFor(ec);
        *detail = ec.message();
        return Read::kRefused;
      }
      if (in_head && parser.is_header_done()) {
        if (std::optional<Refusal> r = CheckHead(parser.get(), head, detail)) {
          *why = *r;
          return Read::kRefused;
        }
        auto expect = parser.get().find(http::field::expect);
        if (expect != parser.get().end() && IEquals(Str(expect->value()), "100-continue") &&
            !parser.is_done() && parser.get().version() >= 11) {
          http::response<http::empty_body> go_on{http::status::continue_, 11};
          http::response_serializer<http::empty_body> sr{go_on};
          if (!SendSerialized(sr, false)) return Read::kClosed;
        }
      }
      if (parser.is_done()) return Read::kRequest;
      if (used > 0 && buf_.size() > 0) continue;  // the parser stopped after the header
    }
    const Wait w = WaitReadable(deadline);
    if (w == Wait::kDraining) return Read::kClosed;
    // Bytes waiting count as arrived in time: when the server is slow to read (a starved
    // machine), the client is not the one late.
    if (w == Wait::kTimeout) return Read::kTimeout;
    if (!Fill()) return Read::kClosed;  // the client closed mid-request: nobody to answer
  }
}

bool Connection::SendResponse(HttpResponse& res, unsigned version, bool head_only) {
  if (res.stream) return SendStream(res, version);
  http::response<http::string_body> msg{http::status::ok, version};
  SetHead(res, &msg);
  msg.body() = std::move(res.body);
  msg.keep_alive(!res.close);
  msg.prepare_payload();
  http::response_serializer<http::string_body> sr{msg};
  return SendSerialized(sr, head_only);
}

bool Connection::SendStream(HttpResponse& res, unsigned version) {
  chunked_ = version >= 11;
  if (!chunked_) res.close = true;  // an HTTP/1.0 body ends where the connection does
  http::response<http::empty_body> msg{http::status::ok, version};
  SetHead(res, &msg);
  msg.keep_alive(!res.close);
  msg.chunked(chunked_);
  http::response_serializer<http::empty_body> sr{msg};
  SendSerialized(sr, true);  // on failure the stream's first Write fails
  if (!res.stream(*this) || failed_) return false;
  return !chunked_ || Send(http::make_chunk_last());
}

template <class Serializer>
bool Connection::SendSerialized(Serializer& sr, bool header_only) {
  sr.split(header_only);
  beast::error_code ec;
  while (!(header_only ? sr.is_header_done() : sr.is_done())) {
    bool sent = false;
    size_t n = 0;
    sr.next(ec, [&](beast::error_code&, const auto& buffers) {
      n = beast::buffer_bytes(buffers);
      sent = Send(buffers);
    });
    if (ec || !sent) return Fail();
    sr.consume(n);
  }
  return true;
}

template <class Buffers>
bool Connection::Send(const Buffers& buffers) {
  if (failed_) return false;
  iovec iov[kMaxIovecs];
  size_t n_iov = 0;
  for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
       ++it) {
    const net::const_buffer b = *it;
    if (b.size() == 0) continue;
    if (n_iov == kMaxIovecs) {
      if (!SendIov(iov, n_iov)) return false;
      n_iov = 0;
    }
    iov[n_iov++] = {.iov_base = const_cast<void*>(b.data()), .iov_len = b.size()};
  }
  return n_iov == 0 || SendIov(iov, n_iov);
}

// Sends every byte of iov (one sendmsg when the socket takes it) or fails: the client reset
// the connection, write_timeout_s passed with the socket full, or the hard shutdown deadline.
bool Connection::SendIov(iovec* iov, size_t n_iov) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(limits_.write_timeout_s);
  while (n_iov > 0) {
    if (shared_.PastHardDeadline()) return Fail();
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = n_iov;
    const ssize_t sent = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Fail();
      if (Clock::now() >= deadline) return Fail();
      pollfd p{.fd = fd_, .events = POLLOUT, .revents = 0};
      poll(&p, 1, PollMs(deadline - Clock::now()));
      continue;
    }
    size_t left = static_cast<size_t>(sent);
    while (n_iov > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --n_iov;
    }
    if (n_iov > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

// Ends our side, then reads and drops what the client still sends (the rest of a refused
// body, a pipelined request) for a bounded time: closing a socket with unread bytes resets
// the connection, and a client may lose the response it has not read yet.
void Connection::LingeringClose() {
  ::shutdown(fd_, SHUT_WR);
  const Clock::time_point deadline = Clock::now() + kLingerTime;
  char sink[4096];
  while (Clock::now() < deadline && !shared_.PastHardDeadline()) {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, PollMs(deadline - Clock::now())) <= 0) continue;
    const ssize_t n = ::recv(fd_, sink, sizeof sink, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) return;
  }
}

}  // namespace

std::string HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (IEquals(n, name)) return v;
  }
  return "";
}

void ServeConnection(int fd, bool over_capacity, const ConnectionLimits& limits,
                     ConnectionShared& shared, HttpHandler& handler) {
  Connection connection(fd, limits, shared);
  try {
    connection.Serve(over_capacity, handler);
  } catch (const std::exception&) {
    // Beast may throw (std::bad_alloc, std::length_error): the connection ends, the server
    // goes on.
  }
}

void ThreadPool::Post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  tasks_.push_back(std::move(task));
  if (idle_ < tasks_.size() && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { Work(); });
  } else {
    cv_.notify_one();
  }
}

size_t ThreadPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.size();
}

void ThreadPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
    --idle_;
    if (tasks_.empty()) return;  // stopped, nothing left
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

void ThreadPool::Join() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
}

Listener::Listener(ConnectionLimits limits, HttpHandler& handler)
    : limits_(limits), handler_(handler),
      workers_(static_cast<size_t>(std::max(limits.max_connections, 1))),
      rejects_(kRejectThreads) {}

Listener::~Listener() {
  Drain(Clock::now());
  workers_.Join();
  rejects_.Join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

Status Listener::Bind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addrs = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &addrs);
      rc != 0) {
    return Unavailable("cannot resolve %s: %s", host.c_str(), gai_strerror(rc));
  }
  int fd = -1;
  std::string why = "no address";
  for (addrinfo* a = addrs; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, kListenBacklog) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addrs);
  if (fd < 0) return Unavailable("cannot listen on %s:%d (%s)", host.c_str(), port, why.c_str());
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  port_ = local.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  std::lock_guard<std::mutex> lock(listen_mu_);
  listen_fd_ = fd;
  return Status::Ok();
}

void Listener::Run() {
  for (;;) {
    int lfd;
    {
      std::lock_guard<std::mutex> lock(listen_mu_);
      lfd = listen_fd_;
    }
    if (stopping_.load() || lfd < 0) break;
    pollfd p{.fd = lfd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, PollMs(kSlice)) <= 0) continue;
    const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      Accept(fd);
    } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      std::this_thread::sleep_for(10ms);  // out of descriptors: let connections close
    }  // else EAGAIN, ECONNABORTED, EINTR, or EINVAL after Drain's shutdown: look again
  }
  {
    std::lock_guard<std::mutex> lock(listen_mu_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }
  workers_.Join();
  rejects_.Join();
}

void Listener::Accept(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // each SSE event goes out now
  ++shared_.open;
  if (active_.load() < limits_.max_connections) {
    ++active_;
    workers_.Post([this, fd] {
      ServeConnection(fd, /*over_capacity=*/false, limits_, shared_, handler_);
      --active_;
    });
    return;
  }
  ++shared_.rejected;
  if (rejects_.queued() >= kMaxQueuedRejects) {
    ::close(fd);
    --shared_.open;
    return;
  }
  rejects_.Post([this, fd] {
    ServeConnection(fd, /*over_capacity=*/true, limits_, shared_, handler_);
  });
}

void Listener::Drain(Clock::time_point hard_deadline) {
  const Clock::rep hard = hard_deadline.time_since_epoch().count();
  if (hard < shared_.hard_deadline.load()) shared_.hard_deadline.store(hard);
  shared_.draining.store(true);
  stopping_.store(true);
  // Shutting the listening socket down refuses new connections at once (Run closes it).
  std::lock_guard<std::mutex> lock(listen_mu_);
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
}

}  // namespace kiln::server
