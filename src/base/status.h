// Status / StatusOr: how kiln reports errors in untrusted input (model files, HTTP bodies,
// grammars, templates). Our code does not throw; KILN_CHECK (check.h) is for our own bugs.
#pragma once

#include <cstdarg>
#include <string>
#include <utility>
#include <variant>

#include "base/check.h"

namespace kiln {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // malformed input: bad file, bad JSON, bad grammar → HTTP 400
  kNotFound,            // missing file / model / tensor → 404
  kOutOfRange,          // index or offset past a bound → 400
  kResourceExhausted,   // limits, memory, queue full → 429/503
  kUnimplemented,       // valid but unsupported (a quant type, a schema keyword) → 501/400
  kFailedPrecondition,  // wrong state for the call → 400
  kCancelled,           // aborted by the client → 499
  kUnavailable,         // network, transient → 503
  kDataLoss,            // truncated / corrupt data → 400
  kInternal,            // our bug surfaced as a status → 500
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: tensor 'x' has 9 dims" (or "OK").
  std::string ToString() const;
  // Returns a copy with "context: " prepended to the message.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// printf-style constructors, one per code.
Status InvalidArgument(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status NotFound(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status OutOfRange(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status ResourceExhausted(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status Unimplemented(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status FailedPrecondition(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status Cancelled(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status Unavailable(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status DataLoss(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status Internal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// printf into a std::string.
std::string StrFormat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string StrFormatV(const char* fmt, va_list args);

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : v_(status) {  // NOLINT: implicit by design
    KILN_CHECK(!status.ok()) << "StatusOr built from an OK status";
  }
  StatusOr(Status&& status) : v_(std::move(status)) {  // NOLINT
    KILN_CHECK(!std::get<Status>(v_).ok()) << "StatusOr built from an OK status";
  }
  StatusOr(const T& value) : v_(value) {}        // NOLINT
  StatusOr(T&& value) : v_(std::move(value)) {}  // NOLINT
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::decay_t<U>, T> &&
                                        !std::is_same_v<std::decay_t<U>, Status>>>
  StatusOr(U&& value) : v_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  T& value() & { CheckOk(); return std::get<T>(v_); }
  const T& value() const& { CheckOk(); return std::get<T>(v_); }
  T&& value() && { CheckOk(); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void CheckOk() const {
    KILN_CHECK(ok()) << "StatusOr::value() on error: " << std::get<Status>(v_).ToString();
  }
  std::variant<Status, T> v_;
};

}  // namespace kiln

#define KILN_STATUS_CONCAT_INNER_(a, b) a##b
#define KILN_STATUS_CONCAT_(a, b) KILN_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define KILN_RETURN_IF_ERROR(expr)                       \
  do {                                                   \
    ::kiln::Status kiln_status_ = (expr);                \
    if (!kiln_status_.ok()) return kiln_status_;         \
  } while (0)

// KILN_ASSIGN_OR_RETURN(auto x, MaybeX()); declares/assigns x or returns the error.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_STATUS_CONCAT_(kiln_statusor_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
