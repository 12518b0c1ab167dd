#include "json_out.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace kiln::cli {

int PrintError(const Status& status) {
  std::fprintf(stderr, "kiln: error: %s\n", status.message().c_str());
  return 1;
}

void PrintJsonLine(const nlohmann::ordered_json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  std::cout.flush();
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open '%s'", path.c_str());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return InvalidArgument("cannot read '%s'", path.c_str());
  return ss.str();
}

StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  std::string cur;
  auto flush = [&]() -> Status {
    if (cur.empty()) return Status::Ok();
    char* end = nullptr;
    long long v = std::strtoll(cur.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > INT32_MAX) {
      return InvalidArgument("bad token id '%s'", cur.c_str());
    }
    ids.push_back(static_cast<int32_t>(v));
    cur.clear();
    return Status::Ok();
  };
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '[' || c == ']') {
      KILN_RETURN_IF_ERROR(flush());
    } else {
      cur.push_back(c);
    }
  }
  KILN_RETURN_IF_ERROR(flush());
  return ids;
}

}  // namespace kiln::cli
