#include "engine/engine_loop.h"

#include <chrono>

namespace kiln::engine {

EngineLoop::EngineLoop(std::unique_ptr<StepModel> model, std::unique_ptr<Scheduler> scheduler)
    : model_(std::move(model)), scheduler_(std::move(scheduler)) {
  snapshot_.stats = scheduler_->stats();
  thread_ = std::thread([this] { Run(); });
}

EngineLoop::~EngineLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  scheduler_->Interrupt();  // a step in progress stops at its next layer
  cv_.notify_all();
  thread_.join();
}

void EngineLoop::Submit(Request request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    incoming_.push_back(std::move(request));
  }
  cv_.notify_all();
}

EngineLoop::Snapshot EngineLoop::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

void EngineLoop::Run() {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  for (;;) {
    std::vector<Request> fresh;
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!scheduler_->HasWork()) {
        // Idle: sleep until a request comes (the timeout bounds how late a cancel is noticed).
        cv_.wait_for(lock, std::chrono::milliseconds(50),
                     [&] { return stop_ || !incoming_.empty(); });
      }
      fresh.swap(incoming_);
      stopping = stop_;
    }
    for (Request& r : fresh) scheduler_->Add(std::move(r));
    if (stopping) {
      scheduler_->AbortAll();
      return;
    }
    if (scheduler_->HasWork()) scheduler_->Step();

    const double now_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const SchedulerStats& st = scheduler_->stats();
    rate_window_.push_back({now_s, st.generated_tokens_total});
    while (rate_window_.size() > 2 && now_s - rate_window_.front().first > 5.0) {
      rate_window_.pop_front();
    }
    const double dt = now_s - rate_window_.front().first;
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_.stats = st;
    snapshot_.queued = static_cast<int64_t>(incoming_.size());
    snapshot_.gen_tok_s =
        dt > 0 ? (st.generated_tokens_total - rate_window_.front().second) / dt : 0;
  }
}

}  // namespace kiln::engine
