// What the forward and the backward entry points share: the settings made by
// set_threads / set_arch (held for one call at a time), the thread pool, and
// how a tensor becomes the kernel's View.
#pragma once

#include <attncheck/validate.h>

#include <array>
#include <mutex>

#include "plan.h"
#include "thread_pool.h"

namespace attncheck::cpu {

// The settings for one call, locked until this is destroyed (calls run one
// at a time, and settings change only between them).
struct CallSettings {
  std::unique_lock<std::mutex> lock;
  const ArchKernels* kernels;  // the forward's instruction set; the backward uses the same one
  int threads;                 // configured threads (>= 1)
  bool threads_set;            // by set_threads (else the default): honoured even for small calls
  ThreadPool* pool;
};
CallSettings lock_call_settings();

// The view of tensor t (effective strides st) for the call's axes family.
View make_view(const DLTensor* t, const std::array<int64_t, 5>& st, const CallShape& s);

}  // namespace attncheck::cpu
