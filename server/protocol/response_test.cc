// SSE framing (the response shapes are tested with the builders, src/api/openai_response_test.cc).
#include "protocol/response.h"

#include <gtest/gtest.h>

namespace kiln::server {
namespace {

using nlohmann::json;

TEST(ResponseTest, SseReplacesInvalidUtf8) {
  std::string s = SseData(json{{"t", std::string("a\xe2\x82")}});
  EXPECT_EQ(s, "data: {\"t\":\"a\xef\xbf\xbd\"}\n\n");
}

TEST(ResponseTest, SseOfRenderedChunk) {
  EXPECT_EQ(SseData(std::string("{\"a\":1}")), "data: {\"a\":1}\n\n");
}

}  // namespace
}  // namespace kiln::server
