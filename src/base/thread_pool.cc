#include "base/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "base/check.h"

namespace kiln {

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Waits until a.load() != old. Spins first, for up to spin_ns: pause instructions for the
// first kPauseNs (a hand-off between busy threads takes ~1 µs), then sched_yield between checks
// so that on a loaded machine the spinning thread hands its core to whoever is runnable (often
// the very thread it waits for) instead of holding it. Then sleeps in the kernel (futex).
constexpr int64_t kPauseNs = 5000;
constexpr int kDefaultSpinUs = 200;

template <class T>
T WaitChange(const std::atomic<T>& a, T old, int64_t spin_ns) {
  T v = a.load(std::memory_order_acquire);
  if (v == old && spin_ns > 0) {
    const int64_t start = NowNs();
    for (int i = 1;; ++i) {
      CpuRelax();
      v = a.load(std::memory_order_acquire);
      if (v != old) return v;
      if (i % 64 != 0) continue;
      const int64_t waited = NowNs() - start;
      if (waited > spin_ns) break;
      if (waited > kPauseNs) std::this_thread::yield();
    }
  }
  while (v == old) {
    a.wait(old, std::memory_order_acquire);
    v = a.load(std::memory_order_acquire);
  }
  return v;
}

int64_t SpinBudgetNs() {
  const char* env = std::getenv("KILN_SPIN_US");
  if (env != nullptr && *env != '\0') return std::max(0L, std::atol(env)) * 1000;
  return int64_t{kDefaultSpinUs} * 1000;
}

}  // namespace

ThreadPool::ThreadPool(int n_threads, int spin_us)
    : n_threads_(n_threads), spin_ns_(spin_us >= 0 ? int64_t{spin_us} * 1000 : SpinBudgetNs()) {
  KILN_CHECK(n_threads >= 1) << "n_threads=" << n_threads;
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);  // publishes job_ and pending_
  generation_.notify_all();
  fn(0);
  for (int32_t left = pending_.load(std::memory_order_acquire); left != 0;) {
    left = WaitChange(pending_, left, spin_ns_);
  }
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(int thread_idx) {
  uint32_t seen = 0;
  for (;;) {
    seen = WaitChange(generation_, seen, spin_ns_);
    if (stop_.load(std::memory_order_relaxed)) return;
    (*job_)(thread_idx);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ParallelFor(ThreadPool* pool, size_t begin, size_t end, size_t grain,
                 const std::function<void(size_t, size_t)>& fn) {
  if (end <= begin) return;
  size_t n = end - begin;
  grain = std::max<size_t>(grain, 1);
  int n_threads = pool ? pool->NumThreads() : 1;
  size_t max_chunks = (n + grain - 1) / grain;
  int n_used = static_cast<int>(std::min<size_t>(n_threads, max_chunks));
  if (n_used <= 1) {
    fn(begin, end);
    return;
  }
  // Contiguous split rounded to the grain, identical for the same (n, grain, n_threads).
  size_t per = (max_chunks + n_used - 1) / n_used * grain;
  pool->Run([&](int t) {
    size_t b = begin + static_cast<size_t>(t) * per;
    size_t e = std::min(end, b + per);
    if (t < n_used && b < e) fn(b, e);
  });
}

int HardwareConcurrency() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace kiln
