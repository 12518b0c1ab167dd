// EngineLoop: the one engine thread. Front ends Submit() requests from any thread; the loop
// drains them into the Scheduler and steps while there is work, then sleeps. Stats() returns
// a snapshot taken after each step. Thread-safe (Submit, Stats); the destructor stops the
// thread (interrupting a step in progress between layers) and ends every pending request with
// finish_reason "abort".
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/scheduler.h"

namespace kiln::engine {

class EngineLoop {
 public:
  // Takes ownership of both; scheduler must use model.
  EngineLoop(std::unique_ptr<StepModel> model, std::unique_ptr<Scheduler> scheduler);
  ~EngineLoop();
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  void Submit(Request request);
  struct Snapshot {
    SchedulerStats stats;
    int64_t queued = 0;     // submitted, not yet seen by the scheduler
    double gen_tok_s = 0;   // generated tokens per second over the last few seconds
  };
  Snapshot Stats() const;

 private:
  void Run();

  std::unique_ptr<StepModel> model_;
  std::unique_ptr<Scheduler> scheduler_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> incoming_;
  bool stop_ = false;
  Snapshot snapshot_;
  std::deque<std::pair<double, int64_t>> rate_window_;  // (seconds, generated total)
  std::thread thread_;
};

}  // namespace kiln::engine
