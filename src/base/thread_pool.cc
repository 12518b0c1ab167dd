#include "base/thread_pool.h"

#include <algorithm>

#include "base/check.h"

namespace kiln {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  KILN_CHECK(n_threads >= 1) << "n_threads=" << n_threads;
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    n_pending_ = n_threads_ - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  fn(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return n_pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(int thread_idx) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(thread_idx);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--n_pending_ == 0) done_cv_.notify_one();
    }
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
