// The HTTP messages HttpServer's routes see, independent of the HTTP library (Boost.Beast is
// used only by connection.cc): a parsed request, the response a route fills in, the writer a
// streaming response writes its chunks through, and the refusals the connection layer decides.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::server {

struct HttpRequest {
  std::string method;  // as sent: "GET", "POST", "OPTIONS"; a HEAD request is routed as "GET"
  std::string path;    // the request-target without its query: "/v1/models"
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::string body;    // de-chunked; at most max_body_bytes
  // True once the client has closed or reset its connection (FIN or RST seen; reads nothing).
  // Set by the connection; callable on the request's thread while the route runs.
  std::function<bool()> client_gone;

  // The value of the first field named `name` (ASCII case-insensitive); "" when absent.
  std::string Header(std::string_view name) const;
};

// Where a streaming response writes its body: each Write is sent at once as one chunk
// (chunked transfer coding; the body of an HTTP/1.0 response is delimited by closing).
class BodyWriter {
 public:
  virtual ~BodyWriter() = default;
  // False when the client is gone, a write timed out or the server's hard shutdown deadline
  // passed; every later call is false too. An empty `data` sends nothing.
  virtual bool Write(std::string_view data) = 0;
  // True when the client has closed or reset the connection (checked without reading).
  virtual bool ClientGone() = 0;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // besides the framing fields
  std::string content_type;                                 // "" → no Content-Type
  std::string body;
  bool close = false;  // close the connection after this response ("Connection: close")
  // A streaming response when set: its body is what `stream` writes, not `body`. Called once,
  // on the request's thread, after the status line and header fields were sent (if that send
  // failed, the writer fails at once, so the stream still learns that its client is gone).
  // Returns true when the body is complete: the last chunk follows and the connection may
  // serve the next request; false ends the connection where it is.
  std::function<bool(BodyWriter&)> stream;
};

// A request the connection layer answers without a route, and why. The connection decides
// when (and closes the connection afterwards); the server writes the body (HttpHandler::Refuse).
enum class Refusal {
  kMalformedRequest,  // 400: request line, Content-Length / chunked framing (RFC 9112)
  kMalformedHeader,   // 400: a field line without a colon, a bad name, a control character
                      //      in a value, obsolete line folding
  kHeaderTooLarge,    // 431: more than kMaxHeaderFields fields or kMaxHeaderBytes in all
  kBodyTooLarge,      // 413: more than max_body_bytes
  kReadTimeout,       // 408: the request was not received within read_timeout_s
  kOverCapacity,      // 503: more open connections than max_connections
  kShuttingDown,      // 503: a request that arrived after Stop()
};

// What a connection calls: routes for requests, error bodies for refusals. Called from many
// connection threads at once: implementations are thread-safe.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void Handle(const HttpRequest& req, HttpResponse& res) = 0;
  // `detail` says what was wrong (the parser's words), for the message.
  virtual void Refuse(Refusal why, const std::string& detail, HttpResponse& res) = 0;
};

}  // namespace kiln::server
