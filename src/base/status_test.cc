#include "base/status.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "base/thread_pool.h"

namespace kiln {
namespace {

StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgument("value %d is not positive", v);
  return v;
}

Status UsesMacros(int v, int* out) {
  KILN_ASSIGN_OR_RETURN(int x, ParsePositive(v));
  *out = x * 2;
  return Status::Ok();
}

TEST(StatusTest, CodesAndMessages) {
  Status s = InvalidArgument("tensor '%s' has %d dims", "w", 9);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "INVALID_ARGUMENT: tensor 'w' has 9 dims");
  EXPECT_EQ(s.WithContext("model.gguf").message(), "model.gguf: tensor 'w' has 9 dims");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, AssignOrReturn) {
  int out = 0;
  EXPECT_TRUE(UsesMacros(4, &out).ok());
  EXPECT_EQ(out, 8);
  Status s = UsesMacros(-1, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out, 8);
}

TEST(StatusDeathTest, CheckAborts) {
  EXPECT_DEATH(KILN_CHECK(1 == 2) << "values " << 3, "KILN_CHECK failed: 1 == 2 values 3");
}

// Many back-to-back jobs: every thread runs each job exactly once and sees the caller's
// writes made before Run(); with and without spinning (the futex hand-off, a short spin that
// falls through to it, and the default budget whose waits pass from pause to sched_yield).
// Every 50th job keeps thread 0 busy for 30 µs so the others wait past the pause phase.
TEST(ThreadPoolTest, BackToBackJobsRunOncePerThread) {
  for (int spin_us : {0, 5, 200}) {
    for (int n_threads : {2, 3}) {
      ThreadPool pool(n_threads, spin_us);
      std::vector<int64_t> per_thread(n_threads, 0);
      int64_t published = 0;
      constexpr int kJobs = 2000;
      for (int j = 1; j <= kJobs; ++j) {
        published = j;
        pool.Run([&](int t) {
          ASSERT_EQ(published, j);
          if (t == 0 && j % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(30));
          per_thread[t] += j;
        });
        for (int t = 0; t < n_threads; ++t) {
          ASSERT_EQ(per_thread[t], int64_t{j} * (j + 1) / 2) << "thread " << t << " job " << j;
        }
      }
    }
  }
}

TEST(ThreadPoolTest, ParallelForCoversRangeOnce) {
  for (int n_threads : {1, 2, 3}) {
    ThreadPool pool(n_threads);
    for (size_t n : {0u, 1u, 7u, 100u, 1001u}) {
      std::vector<std::atomic<int>> hits(n);
      ParallelFor(&pool, 0, n, 16, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) hits[i]++;
      });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

}  // namespace
}  // namespace kiln
