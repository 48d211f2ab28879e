// A fixed set of worker threads that run one parallel loop at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace attncheck::cpu {

class ThreadPool {
 public:
  ThreadPool() = default;
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Calls body(item, worker) for every item in [0, items), on `threads`
  // threads (the caller's included; worker < threads). Items are handed out
  // in order from a shared counter; which worker runs which item varies, so
  // body must not let its result depend on `worker`.
  void run(int threads, int64_t items, const std::function<void(int64_t, int)>& body);

 private:
  void resize(int workers);
  void work(int worker);
  void loop(int worker);

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  uint64_t generation_ = 0;
  int active_ = 0;        // workers taking part in the current loop
  int running_ = 0;       // workers not yet finished with it
  bool stop_ = false;
  const std::function<void(int64_t, int)>* body_ = nullptr;
  int64_t items_ = 0;
  int64_t next_ = 0;      // guarded by mutex_ only for reset; taken atomically
};

}  // namespace attncheck::cpu
