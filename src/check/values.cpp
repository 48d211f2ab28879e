// The values of a case's elements (guarded.h): a function of the value
// recipe and the element's logical index only.
#include <attncheck/guarded.h>

#include <cmath>

namespace attncheck {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The value of one logical element: a function of the recipe and the index
// only, never of the layout, so the same case in two layouts holds the same
// values.
double draw_value(const ValueRecipe& r, uint64_t salt, const std::array<int64_t, 5>& idx,
                  int64_t position, int64_t positions) {
  uint64_t h = splitmix64(r.seed ^ (salt << 40));
  for (int64_t x : idx) h = splitmix64(h ^ static_cast<uint64_t>(x));
  const double u1 = ((h >> 11) + 1) * 0x1p-53, u2 = (splitmix64(h) >> 11) * 0x1p-53;
  const double normal = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  switch (r.kind) {
    case ValueKind::normal: return normal;
    case ValueKind::large: return 24 * normal;
    case ValueKind::ties: return static_cast<double>(h % 3) - 1;
    case ValueKind::dominant:
      return position == static_cast<int64_t>(r.seed % static_cast<uint64_t>(positions)) ? 16 * normal
                                                                                          : normal;
    case ValueKind::scaled: return std::ldexp(normal, static_cast<int>(r.seed % 29) - 20);
    case ValueKind::offset: return (r.seed % 2 ? -128 : 128) + 96 * normal;
  }
  return normal;
}

}  // namespace attncheck
