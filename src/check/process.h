// The plumbing of a forked call (src/check/runner.cpp): waiting for a child
// with a deadline, reading back what it printed, naming the exception a
// call threw, and how much address space this process maps.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstddef>
#include <string>

namespace attncheck::process {

size_t page_size();
// Bytes of address space this process has mapped now.
size_t mapped_bytes();
// Waits up to `seconds` for the child to exit (reaping it, with its
// resource usage); false on timeout.
bool wait_child(pid_t pid, double seconds, int* wstatus, rusage* usage);
// What a call printed, captured in the file `fd`:
// whether its last 64 KiB mention running out of memory (a sanitizer's
// allocator says so, in one of several wordings, at the start of a report
// whose stack trace may push it out of the lines shown);
bool output_says_out_of_memory(int fd);
// its last lines, with how much it printed ("" when nothing).
std::string output_tail(int fd);
// Inside a catch: "threw std::runtime_error: <what()>", or an
// ImplementationError's own words.
std::string exception_text();
// Inside a catch: whether the exception is a std::bad_alloc.
bool is_bad_alloc();

}  // namespace attncheck::process
