#include <attncheck/loader.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

namespace attncheck {

bool valid_impl_name(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (const char* p = name; *p; ++p) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

std::shared_ptr<Plugin> Plugin::load(const std::string& path) {
  auto fail = [&](const std::string& why) { return LoadError(path + ": " + why); };
  if (path.find('/') != std::string::npos && !std::filesystem::exists(path))
    throw fail("no such file");
  std::shared_ptr<Plugin> p(new Plugin);
  p->path_ = path;
  dlerror();
  p->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (p->handle_ == nullptr) {
    const char* e = dlerror();
    throw fail(std::string("cannot load: ") + (e ? e : "unknown dlopen error"));
  }
  using Entry = const attncheck_impl* (*)(int, size_t*);
  auto entry = reinterpret_cast<Entry>(dlsym(p->handle_, "attncheck_impls"));
  if (entry == nullptr)
    throw fail("does not export attncheck_impls (is it an attncheck plugin? in C++ declare it extern \"C\")");
  size_t count = 0;
  const attncheck_impl* arr = entry(ATTNCHECK_ABI_VERSION, &count);
  if (arr == nullptr)
    throw fail("does not serve attncheck ABI version " + std::to_string(ATTNCHECK_ABI_VERSION) +
               " (attncheck_impls returned NULL)");
  if (count == 0) throw fail("declares no implementations");
  if (count > 4096) throw fail("declares " + std::to_string(count) + " implementations (too many)");
  std::set<std::string> names;
  for (size_t i = 0; i < count; ++i) {
    const attncheck_impl& impl = arr[i];
    if (!valid_impl_name(impl.name))
      throw fail("implementation " + std::to_string(i) + " has an invalid name" +
                 (impl.name ? " '" + std::string(impl.name) + "'" : std::string(" (null)")) +
                 " (expected [a-z0-9_.-]+)");
    if (!names.insert(impl.name).second)
      throw fail("implementation name '" + std::string(impl.name) + "' appears twice");
    if (impl.device_type != kDLCPU && impl.device_type != kDLCUDA)
      throw fail("implementation '" + std::string(impl.name) + "' has device_type " +
                 std::to_string(impl.device_type) + " (expected kDLCPU or kDLCUDA)");
    if (impl.attention == nullptr)
      throw fail("implementation '" + std::string(impl.name) + "' has a null attention function");
    p->impls_.push_back(impl);
  }
  // The optional backward table: each entry names a forward implementation
  // of this library, on the same device.
  using BackwardEntry = const attncheck_backward_impl* (*)(int, size_t*);
  if (auto bentry = reinterpret_cast<BackwardEntry>(dlsym(p->handle_, "attncheck_backward_impls"))) {
    size_t bcount = 0;
    const attncheck_backward_impl* barr = bentry(ATTNCHECK_BACKWARD_ABI_VERSION, &bcount);
    if (barr == nullptr)
      throw fail("does not serve attncheck backward ABI version " + std::to_string(ATTNCHECK_BACKWARD_ABI_VERSION) +
                 " (attncheck_backward_impls returned NULL)");
    if (bcount > count) throw fail("declares more backward implementations than forward ones");
    std::set<std::string> bnames;
    for (size_t i = 0; i < bcount; ++i) {
      const attncheck_backward_impl& b = barr[i];
      if (!valid_impl_name(b.name))
        throw fail("backward implementation " + std::to_string(i) + " has an invalid name" +
                   (b.name ? " '" + std::string(b.name) + "'" : std::string(" (null)")) + " (expected [a-z0-9_.-]+)");
      if (!bnames.insert(b.name).second)
        throw fail("backward implementation name '" + std::string(b.name) + "' appears twice");
      const attncheck_impl* forward = nullptr;
      for (const auto& f : p->impls_)
        if (std::strcmp(f.name, b.name) == 0) forward = &f;
      if (forward == nullptr)
        throw fail("backward implementation '" + std::string(b.name) + "' names no forward implementation");
      if (b.device_type != forward->device_type)
        throw fail("backward implementation '" + std::string(b.name) + "' has device_type " +
                   std::to_string(b.device_type) + ", its forward " + std::to_string(forward->device_type));
      if (b.backward == nullptr)
        throw fail("backward implementation '" + std::string(b.name) + "' has a null backward function");
      p->backward_.push_back(b);
    }
  }
  return p;
}

const attncheck_backward_impl* Plugin::find_backward(const std::string& name) const {
  for (const auto& b : backward_)
    if (name == b.name) return &b;
  return nullptr;
}

std::vector<std::string> Plugin::builtin_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("ATTNCHECK_BUILTIN"); env && *env) out.push_back(env);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto dir = exe.parent_path();
    out.push_back((dir / ".." / "lib" / "attncheck" / "builtin.so").lexically_normal().string());
    out.push_back((dir / "lib" / "attncheck" / "builtin.so").string());
    out.push_back((dir / "builtin.so").string());
  }
  return out;
}

std::shared_ptr<Plugin> Plugin::builtin() {
  auto candidates = builtin_candidates();
  for (const auto& c : candidates)
    if (std::filesystem::exists(c)) return load(c);
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
  throw LoadError("builtin.so not found (tried " + tried + "; set ATTNCHECK_BUILTIN)");
}

const attncheck_impl& Plugin::find(const std::string& name) const {
  for (const auto& impl : impls_)
    if (name == impl.name) return impl;
  std::string have;
  for (const auto& impl : impls_) have += (have.empty() ? "" : ", ") + std::string(impl.name);
  throw LoadError(path_ + ": no implementation named '" + name + "' (it has: " + have + ")");
}

Plugin::~Plugin() {
  // Libraries stay loaded: an implementation may have registered atexit
  // handlers or thread-local state that would dangle after dlclose.
}

}  // namespace attncheck
