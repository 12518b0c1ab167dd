// libFuzzer target: any bytes through the request parser of both endpoints must yield either a
// request or an ApiError (400/404), never a crash, hang or sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/request.h"
#include "protocol/response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  kiln::server::RequestLimits limits{.n_vocab = 50000};
  for (auto endpoint : {kiln::server::Endpoint::kChat, kiln::server::Endpoint::kCompletion}) {
    kiln::server::ParsedRequest parsed;
    if (auto err = kiln::server::ParseRequest(body, endpoint, limits, &parsed)) {
      // Error bodies echo user text: they must serialize even with invalid UTF-8.
      (void)kiln::server::Dump(kiln::server::ErrorBody(*err));
      if (err->http_status != 400 && err->http_status != 404) __builtin_trap();
    } else if (endpoint == kiln::server::Endpoint::kChat) {
      (void)kiln::server::Dump(parsed.messages);
    }
  }
  return 0;
}
