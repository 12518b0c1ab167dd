// Minimal leveled logging to stderr. Level from KILN_LOG=debug|info|warn|error (default warn),
// read once. Logging never throws and never allocates on the hot path when disabled.
#pragma once

namespace kiln {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

LogLevel CurrentLogLevel();
void SetLogLevel(LogLevel level);
void LogF(LogLevel level, const char* file, int line, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace kiln

#define KILN_LOG(level, ...)                                                   \
  do {                                                                         \
    if (::kiln::LogLevel::level >= ::kiln::CurrentLogLevel())                  \
      ::kiln::LogF(::kiln::LogLevel::level, __FILE__, __LINE__, __VA_ARGS__);  \
  } while (0)
