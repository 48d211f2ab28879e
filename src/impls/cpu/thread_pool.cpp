#include "thread_pool.h"

#include <atomic>

namespace attncheck::cpu {

ThreadPool::~ThreadPool() { resize(0); }

void ThreadPool::resize(int workers) {
  if (static_cast<int>(threads_.size()) == workers) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  stop_ = false;
  for (int w = 1; w <= workers; ++w) threads_.emplace_back([this, w] { loop(w); });
}

void ThreadPool::work(int worker) {
  std::atomic_ref<int64_t> next(next_);
  for (;;) {
    const int64_t item = next.fetch_add(1, std::memory_order_relaxed);
    if (item >= items_) return;
    (*body_)(item, worker);
  }
}

void ThreadPool::loop(int worker) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (worker >= active_) continue;
    }
    work(worker);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--running_ == 0) done_.notify_all();
    }
  }
}

void ThreadPool::run(int threads, int64_t items, const std::function<void(int64_t, int)>& body) {
  if (threads < 1) threads = 1;
  if (threads > items) threads = static_cast<int>(items > 0 ? items : 1);
  if (threads == 1) {
    for (int64_t i = 0; i < items; ++i) body(i, 0);
    return;
  }
  if (static_cast<int>(threads_.size()) < threads - 1) resize(threads - 1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    items_ = items;
    next_ = 0;
    active_ = threads;
    running_ = threads - 1;
    ++generation_;
  }
  wake_.notify_all();
  work(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return running_ == 0; });
  body_ = nullptr;
}

}  // namespace attncheck::cpu
