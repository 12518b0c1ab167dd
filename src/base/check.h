// KILN_CHECK: always-on invariant checks for our own bugs (never for untrusted input, which
// returns a Status). KILN_CHECK(cond) << "context"; prints file:line, the condition and the
// message, then aborts. KILN_DCHECK is compiled out in NDEBUG builds.
#pragma once

#include <sstream>

namespace kiln::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond);
  ~CheckFailure();  // prints and aborts
  template <typename T>
  CheckFailure& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Lets `cond ? (void)0 : Voidify() & CheckFailure(...) << ...` type-check.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace kiln::internal

#define KILN_CHECK(cond)                                   \
  (cond) ? (void)0                                         \
         : ::kiln::internal::Voidify() &                   \
               ::kiln::internal::CheckFailure(__FILE__, __LINE__, #cond)

#ifdef NDEBUG
#define KILN_DCHECK(cond) \
  while (false) KILN_CHECK(cond)
#else
#define KILN_DCHECK(cond) KILN_CHECK(cond)
#endif
