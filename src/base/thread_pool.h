// ThreadPool + ParallelFor: kernels parallelise inside one step with a fixed set of workers.
// The calling thread takes part, so a pool of N threads runs N-1 workers. Kernels never spawn
// threads or split work by hand; they pass a range and a grain.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {

// Thread-safe for one caller at a time: Run() must not be called concurrently or re-entrantly.
class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1, including the caller
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int NumThreads() const { return n_threads_; }
  // Calls fn(thread_idx) once on each of the N threads (caller is index 0) and waits for all.
  void Run(const std::function<void(int thread_idx)>& fn);

 private:
  void WorkerLoop(int thread_idx);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int n_pending_ = 0;
  bool stop_ = false;
};

// Splits [begin, end) into chunks of at least `grain` items, contiguous per thread (a fixed,
// deterministic partition for a given thread count), and calls fn(chunk_begin, chunk_end).
// pool may be null: runs inline.
void ParallelFor(ThreadPool* pool, size_t begin, size_t end, size_t grain,
                 const std::function<void(size_t, size_t)>& fn);

// Number of hardware threads (at least 1).
int HardwareConcurrency();

}  // namespace kiln
