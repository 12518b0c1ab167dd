// ThreadPool + ParallelFor: kernels parallelise inside one step with a fixed set of workers.
// The calling thread takes part, so a pool of N threads runs N-1 workers. Kernels never spawn
// threads or split work by hand; they pass a range and a grain.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace kiln {

// Thread-safe for one caller at a time: Run() must not be called concurrently or re-entrantly.
//
// Hand-off: Run() publishes the job and bumps an atomic generation; workers wait for it and
// the caller waits for the last worker the same way: no mutex. A waiting thread spins first
// (pause for a few µs, then sched_yield between checks, so on a loaded machine it hands its
// core to whoever is runnable, often the very thread it waits for), for up to KILN_SPIN_US
// (default 200 µs: a decode step's dispatches follow each other closer than that), then
// sleeps in a futex wait (std::atomic::wait). Measured in docs/performance.md: a futex wake
// costs 10-20 µs per dispatch on an idle machine and milliseconds on a loaded one.
class ThreadPool {
 public:
  // n_threads >= 1, including the caller; spin_us < 0: KILN_SPIN_US (default 200).
  explicit ThreadPool(int n_threads, int spin_us = -1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int NumThreads() const { return n_threads_; }
  // Calls fn(thread_idx) once on each of the N threads (caller is index 0) and waits for all.
  void Run(const std::function<void(int thread_idx)>& fn);

 private:
  void WorkerLoop(int thread_idx);

  int n_threads_;
  int64_t spin_ns_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;  // written before generation_ is bumped
  std::atomic<uint32_t> generation_{0};
  std::atomic<int32_t> pending_{0};
  std::atomic<bool> stop_{false};
};

// Splits [begin, end) into chunks of at least `grain` items, contiguous per thread (a fixed,
// deterministic partition for a given thread count), and calls fn(chunk_begin, chunk_end).
// pool may be null: runs inline.
void ParallelFor(ThreadPool* pool, size_t begin, size_t end, size_t grain,
                 const std::function<void(size_t, size_t)>& fn);

// Number of hardware threads (at least 1).
int HardwareConcurrency();

}  // namespace kiln
