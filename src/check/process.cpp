#include "process.h"

#include <attncheck/runner.h>

#include <cxxabi.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <thread>
#include <typeinfo>

namespace attncheck::process {

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

namespace {
std::string demangle(const char* name) {
  int st = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &st), std::free);
  return st == 0 && d ? d.get() : name;
}

}  // namespace

std::string exception_text() {
  try {
    throw;
  } catch (const ImplementationError& e) {
    return e.what();
  } catch (...) {
  }
  const std::type_info* t = abi::__cxa_current_exception_type();
  std::string text = "threw " + (t ? demangle(t->name()) : std::string("an exception"));
  try {
    throw;
  } catch (const std::exception& e) {
    text += std::string(": ") + e.what();
  } catch (...) {
  }
  return text;
}

bool is_bad_alloc() {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return true;
  } catch (...) {
    return false;
  }
}

size_t mapped_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return pages * page_size();
}

bool wait_child(pid_t pid, double seconds, int* wstatus, rusage* usage) {
  const auto start = std::chrono::steady_clock::now();
  auto left = [&] {
    return seconds - std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
#ifdef SYS_pidfd_open
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    bool exited = false;
    for (;;) {
      const double l = left();
      if (l <= 0) break;
      pollfd p{pidfd, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(l * 1000) + 1);
      if (ready > 0) {
        exited = true;
        break;
      }
      if (ready < 0 && errno != EINTR) break;
    }
    close(pidfd);
    if (exited) {
      while (wait4(pid, wstatus, 0, usage) < 0 && errno == EINTR) {
      }
      return true;
    }
    return false;
  }
#endif
  // No pidfd (an old kernel): poll waitpid, backing off to 5 ms.
  std::chrono::microseconds nap(50);
  for (;;) {
    const pid_t r = wait4(pid, wstatus, WNOHANG, usage);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;
    if (left() <= 0) return false;
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(5000));
  }
}

bool output_says_out_of_memory(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size == 0) return false;
  constexpr off_t kScan = 64 << 10;
  const off_t from = st.st_size > kScan ? st.st_size - kScan : 0;
  std::string text(static_cast<size_t>(st.st_size - from), '\0');
  const ssize_t n = pread(fd, text.data(), text.size(), from);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  for (const char* words : {"out of memory", "out-of-memory", "Out of memory", "failed to allocate"})
    if (text.find(words) != std::string::npos) return true;
  return false;
}

std::string output_tail(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size == 0) return "";
  const off_t size = st.st_size;
  constexpr off_t kTail = 2048;
  const off_t from = size > kTail ? size - kTail : 0;
  std::string tail(static_cast<size_t>(size - from), '\0');
  const ssize_t n = pread(fd, tail.data(), tail.size(), from);
  tail.resize(n > 0 ? static_cast<size_t>(n) : 0);
  // The last 8 lines, each cut to 200 characters, unprintable bytes as '?'.
  size_t start = tail.size();
  for (int lines = 0; start > 0 && lines < 9; --start)
    if (tail[start - 1] == '\n' && ++lines == 9) break;
  std::string out;
  size_t col = 0;
  for (size_t i = start; i < tail.size(); ++i) {
    const char c = tail[i];
    if (c == '\n') {
      out += '\n', col = 0;
      continue;
    }
    if (++col > 200) continue;
    out += (static_cast<unsigned char>(c) < 0x20 && c != '\t') || static_cast<unsigned char>(c) >= 0x7f ? '?' : c;
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return "printed " + std::to_string(size) + " bytes" + (from > 0 ? ", ending" : "") + ":\n" + out;
}

}  // namespace attncheck::process
