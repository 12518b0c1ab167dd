#include "base/status.h"

#include <cstdio>

namespace kiln {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

std::string StrFormatV(const char* fmt, va_list args) {
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return std::string();
  std::string out(static_cast<size_t>(n), '\0');
  std::vsnprintf(out.data(), out.size() + 1, fmt, args);
  return out;
}

std::string StrFormat(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::string s = StrFormatV(fmt, args);
  va_end(args);
  return s;
}

#define KILN_DEFINE_STATUS_CTOR_(Name, Code)      \
  Status Name(const char* fmt, ...) {             \
    va_list args;                                 \
    va_start(args, fmt);                          \
    std::string msg = StrFormatV(fmt, args);      \
    va_end(args);                                 \
    return Status(StatusCode::Code, std::move(msg)); \
  }

KILN_DEFINE_STATUS_CTOR_(InvalidArgument, kInvalidArgument)
KILN_DEFINE_STATUS_CTOR_(NotFound, kNotFound)
KILN_DEFINE_STATUS_CTOR_(OutOfRange, kOutOfRange)
KILN_DEFINE_STATUS_CTOR_(ResourceExhausted, kResourceExhausted)
KILN_DEFINE_STATUS_CTOR_(Unimplemented, kUnimplemented)
KILN_DEFINE_STATUS_CTOR_(FailedPrecondition, kFailedPrecondition)
KILN_DEFINE_STATUS_CTOR_(Cancelled, kCancelled)
KILN_DEFINE_STATUS_CTOR_(Unavailable, kUnavailable)
KILN_DEFINE_STATUS_CTOR_(DataLoss, kDataLoss)
KILN_DEFINE_STATUS_CTOR_(Internal, kInternal)

#undef KILN_DEFINE_STATUS_CTOR_

}  // namespace kiln
