// Loading plugin libraries: dlopen, the ABI version handshake, and checks of
// what the library declares.
#pragma once

#include <attncheck/plugin.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace attncheck {

// Thrown when a library cannot be used; what() is one line naming the library
// and the reason (missing file, missing symbol, ABI version, bad names).
struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Plugin {
 public:
  // Loads the library at path (a path containing '/', or a name the dynamic
  // loader searches for) and asks it for ATTNCHECK_ABI_VERSION.
  static std::shared_ptr<Plugin> load(const std::string& path);
  // The project's own implementations: lib/attncheck/builtin.so beside the
  // running executable (../lib/attncheck/ when installed, the build tree
  // otherwise), or the path in $ATTNCHECK_BUILTIN.
  static std::shared_ptr<Plugin> builtin();
  // Where builtin() looks, in order.
  static std::vector<std::string> builtin_candidates();

  ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<attncheck_impl>& impls() const { return impls_; }
  // The implementation of that name; throws LoadError listing the names
  // there are when none has it.
  const attncheck_impl& find(const std::string& name) const;
  // The backward entry point of the forward implementation of that name
  // (the library's optional attncheck_backward_impls), or null.
  const attncheck_backward_impl* find_backward(const std::string& name) const;
  const std::vector<attncheck_backward_impl>& backward_impls() const { return backward_; }

 private:
  Plugin() = default;
  void* handle_ = nullptr;
  std::string path_;
  std::vector<attncheck_impl> impls_;
  std::vector<attncheck_backward_impl> backward_;
};

// True for a valid implementation name: [a-z0-9_.-]+.
bool valid_impl_name(const char* name);

}  // namespace attncheck
