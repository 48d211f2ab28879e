// Guarded memory's mappings: [guard page][region][guard page], reused
// through a small pool (guarded.h).
#include <attncheck/guarded.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <stdexcept>

namespace attncheck {

namespace {

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }


// Mappings are reused: mmap, the first touch of every page and munmap cost
// more than a small case's whole check (the fuzz target runs dozens of
// cases' tensors per input). A released mapping waits here, at most
// kPoolMappings of them and kPoolBytes in all; a new one takes the smallest
// that is large enough, and gets its guard pages and poison afresh.
constexpr size_t kPoolMappings = 16;
constexpr size_t kPoolBytes = size_t{64} << 20;

struct MappingPool {
  std::mutex mu;
  std::vector<std::pair<std::byte*, size_t>> free;  // base, total
  size_t bytes = 0;
};

MappingPool& pool() {
  static auto* p = new MappingPool;  // never destroyed: mappings may outlive static destructors
  return *p;
}

// A pooled mapping of at least `total` bytes, or {nullptr, 0}.
std::pair<std::byte*, size_t> take_pooled(size_t total) {
  MappingPool& p = pool();
  std::lock_guard lock(p.mu);
  auto best = p.free.end();
  for (auto it = p.free.begin(); it != p.free.end(); ++it)
    if (it->second >= total && (best == p.free.end() || it->second < best->second)) best = it;
  if (best == p.free.end()) return {nullptr, 0};
  const auto m = *best;
  p.free.erase(best);
  p.bytes -= m.second;
  return m;
}

void release_mapping(std::byte* base, size_t total) {
  MappingPool& p = pool();
  {
    std::lock_guard lock(p.mu);
    if (p.free.size() < kPoolMappings && p.bytes + total <= kPoolBytes) {
      p.free.emplace_back(base, total);
      p.bytes += total;
      return;
    }
  }
  munmap(base, total);
}

}  // namespace

std::unique_ptr<Mapping> make_mapping(size_t span, int64_t before, size_t elem, bool flush_high, bool misalign,
                                      unsigned char fill, std::byte** data) {
  const size_t page = page_size();
  auto m = std::make_unique<Mapping>();
  m->region_size = round_up(span + (misalign ? elem : 0) + 64, page);
  const size_t guard_low = round_up(static_cast<size_t>(before) * elem + page, page);
  const size_t guard_high = page;
  m->total = guard_low + m->region_size + guard_high;
  const auto [pooled, pooled_total] = take_pooled(m->total);
  if (pooled) {
    // Everything past the region is guard (a larger mapping has a longer
    // upper guard); the region is writable again.
    m->base = pooled;
    m->total = pooled_total;
    m->region = m->base + guard_low;
    mprotect(m->region, m->region_size, PROT_READ | PROT_WRITE);
  } else {
    void* p = mmap(nullptr, m->total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("guarded memory: mmap of " + std::to_string(m->total) + " bytes failed");
    m->base = static_cast<std::byte*>(p);
    m->region = m->base + guard_low;
  }
  mprotect(m->base, guard_low, PROT_NONE);
  mprotect(m->region + m->region_size, m->total - guard_low - m->region_size, PROT_NONE);
  std::memset(m->region, fill, m->region_size);
  // First element flush against the lower guard (plus the element size when
  // misaligned), or the last element's end flush against the upper one.
  std::byte* first = flush_high ? m->region + m->region_size - span : m->region + (misalign ? elem : 0);
  *data = first - before * static_cast<int64_t>(elem);
  return m;
}

Mapping::~Mapping() {
  if (base) release_mapping(base, total);
}

}  // namespace attncheck
