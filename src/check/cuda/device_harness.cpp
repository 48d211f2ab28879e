#include "device_harness.h"

#include <cuda_runtime_api.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace attncheck::cuda_harness {

namespace {

constexpr int kDevice = 0;
constexpr const char* kRoles[4] = {"q", "k", "v", "out"};

// A device that faulted and could not be reset, or still runs a kernel that
// hung, cannot check later cases; they report this instead of a verdict.
std::string& lost() {
  static std::string why;
  return why;
}

std::string describe(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
}

// One mapping's mirror: [guard low][region][guard high], as on the host.
struct Mirror {
  const Mapping* host = nullptr;
  bool input = true;
  std::byte* dev = nullptr;
  size_t guard_low = 0, guard_high = 0;
  unsigned char fill = 0;
};

// What the worker thread owns: copies of everything the call points to, so
// an abandoned (hung) call never reads the case after it is gone.
struct CallState {
  std::array<DLTensor, 4> t{};
  std::array<std::array<int64_t, 5>, 4> shape{}, strides{};
  attncheck_attention call{};
  char message[1000] = "";
};

// Whether the context still works after an error; if not, resets the device
// (which frees every allocation) and says whether that helped.
bool recover() {
  void* probe = nullptr;
  if (cudaDeviceSynchronize() == cudaSuccess && cudaMalloc(&probe, 1) == cudaSuccess) {
    cudaFree(probe);
    cudaGetLastError();
    return true;
  }
  cudaDeviceReset();
  cudaGetLastError();
  if (cudaSetDevice(kDevice) == cudaSuccess && cudaMalloc(&probe, 1) == cudaSuccess) {
    cudaFree(probe);
    return true;
  }
  return false;
}

}  // namespace

bool device_present(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    if (why) *why = e != cudaSuccess ? "cudaGetDeviceCount: " + describe(e) : "cudaGetDeviceCount found 0 devices";
    return false;
  }
  return true;
}

RunResult run_call(const attncheck_impl& impl, GuardedCase& g, const RunOptions& opt) {
  RunResult result;
  if (!lost().empty()) {
    // Not this case's fault, and not checkable: the checker's error.
    result.error = "not run: the CUDA device is unusable after an earlier case (" + lost() + ")";
    return result;
  }
  std::string why;
  if (!device_present(&why)) {
    result.error = "no CUDA device is present (" + why + ")";
    return result;
  }
  if (const cudaError_t e = cudaSetDevice(kDevice); e != cudaSuccess) {
    result.error = "cudaSetDevice: " + describe(e);
    return result;
  }

  // Mirror every mapping.
  std::vector<Mirror> mirrors;
  auto free_all = [&] {
    for (auto& m : mirrors)
      if (m.dev) cudaFree(m.dev);
  };
  for (const auto& [map, input] : g.mappings()) {
    Mirror m;
    m.host = map;
    m.input = input;
    m.guard_low = static_cast<size_t>(map->region - map->base);
    m.guard_high = map->total - m.guard_low - map->region_size;
    m.fill = input ? g.input_fill() : g.out_canary();
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, map->total);
    if (e == cudaSuccess) {
      m.dev = static_cast<std::byte*>(p);
      mirrors.push_back(m);
      e = cudaMemset(m.dev, m.fill, m.guard_low);
    }
    if (e == cudaSuccess) e = cudaMemcpy(m.dev + m.guard_low, map->region, map->region_size, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemset(m.dev + m.guard_low + map->region_size, m.fill, m.guard_high);
    if (e != cudaSuccess) {
      free_all();
      cudaGetLastError();
      result.error = "mirroring " + std::to_string(map->total) + " bytes on the device: " + describe(e);
      return result;
    }
  }

  // The same call, its data pointers translated into the mirrors.
  auto state = std::make_shared<CallState>();
  const attncheck_attention* host_call = g.call();
  const DLTensor* host_t[4] = {host_call->q, host_call->k, host_call->v, host_call->out};
  for (int r = 0; r < 4; ++r) {
    DLTensor& t = state->t[r];
    t = *host_t[r];
    for (int d = 0; d < 5; ++d) state->shape[r][d] = t.shape[d];
    t.shape = state->shape[r].data();
    if (t.strides) {
      for (int d = 0; d < 5; ++d) state->strides[r][d] = t.strides[d];
      t.strides = state->strides[r].data();
    }
    const auto* data = static_cast<const std::byte*>(t.data);
    for (const auto& m : mirrors)
      if (data >= m.host->base && data < m.host->base + m.host->total) t.data = m.dev + (data - m.host->base);
    t.device = {kDLCUDA, kDevice};
  }
  state->call = *host_call;
  state->call.q = &state->t[0], state->call.k = &state->t[1], state->call.v = &state->t[2];
  state->call.out = &state->t[3];

  // Call and wait on a worker thread, so a kernel that never finishes is
  // reported instead of blocking the suite.
  std::promise<std::pair<int, cudaError_t>> done;
  auto future = done.get_future();
  std::thread([state, impl, done = std::move(done)]() mutable {
    cudaSetDevice(kDevice);
    const int st = call_attention(impl, &state->call, state->message, sizeof state->message);
    state->message[sizeof state->message - 1] = '\0';
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaGetLastError();  // a launch error left pending
    done.set_value({st, e});
  }).detach();
  const double limit = opt.timeout_base + opt.timeout_per_gflop * g.spec().flops() * 1e-9;
  if (future.wait_for(std::chrono::duration<double>(limit)) != std::future_status::ready) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "hang: the call and its kernels did not finish within %.1f s", limit);
    result.finding = buf;
    lost() = "a kernel hung";
    return result;  // the mirrors stay allocated: the kernel may still use them
  }
  const auto [status, error] = future.get();
  result.status = status;
  result.message = state->message;
  if (status != ATTNCHECK_OK && status != ATTNCHECK_UNSUPPORTED && status != ATTNCHECK_FAILED) {
    result.finding = "returned status " + std::to_string(status) + ", not one of the ABI's";
  }
  if (error != cudaSuccess) {
    // A kernel fault or a launch error: a finding whatever the status says.
    result.finding = "CUDA error during the call: " + describe(error);
    free_all();
    if (!recover()) lost() = "the context did not recover from " + std::string(cudaGetErrorName(error));
    return result;
  }

  // Copy back: regions into the host mappings, guard bands compared here.
  std::vector<unsigned char> band;
  for (const auto& m : mirrors) {
    cudaError_t e = cudaMemcpy(m.host->region, m.dev + m.guard_low, m.host->region_size, cudaMemcpyDeviceToHost);
    for (int side = 0; side < 2 && e == cudaSuccess && result.finding.empty(); ++side) {
      const size_t at = side == 0 ? 0 : m.guard_low + m.host->region_size;
      band.resize(side == 0 ? m.guard_low : m.guard_high);
      e = cudaMemcpy(band.data(), m.dev + at, band.size(), cudaMemcpyDeviceToHost);
      for (unsigned char b : band)
        if (e == cudaSuccess && b != m.fill) {
          std::string names;
          for (int r = 0; r < 4; ++r)
            if (static_cast<const std::byte*>(host_t[r]->data) >= m.host->base &&
                static_cast<const std::byte*>(host_t[r]->data) < m.host->base + m.host->total &&
                names.find(kRoles[r]) == std::string::npos)
              names += (names.empty() ? "" : "/") + std::string(kRoles[r]);
          result.finding = std::string("wrote ") + (side == 0 ? "before the start of " : "past the end of ") + names +
                           " (into the device guard band)";
          break;
        }
    }
    if (e != cudaSuccess && result.finding.empty()) result.error = "copying back: " + describe(e);
  }
  free_all();
  return result;
}

}  // namespace attncheck::cuda_harness
