// RapidCheck generators of cases, composed from small ones so a failure
// shrinks to the smallest sizes, the fewest heads, the plainest layouts and
// the simplest values that still fail. Use them in your own properties:
//
//   rc::check([](void) {
//     const attncheck::Case c = *attncheck::gen::attention_case({});
//     ...
//   });
#pragma once

#include <attncheck/case.h>
#include <attncheck/guarded.h>
#include <attncheck/properties.h>
#include <rapidcheck.h>

#include <optional>

namespace attncheck::gen {

struct CaseOptions {
  std::optional<Axes> axes;          // any when unset
  std::optional<DType> dtype;        // f32 when unset
  std::optional<Property> property;  // shape the case to what it needs
  double max_flops = 4e6;            // keep each case cheap: its arithmetic
  double max_elements =
      1 << 17;  // and its memory (elements of q, k, v and out: values are drawn for each)
};

// A choice among alternatives listed simplest first, by weight: the same
// draw as RapidCheck's weightedOneOf, but it shrinks towards the first
// alternative (RapidCheck's weightedElement, element and weightedOneOf never
// shrink their choice: a dimension of 13 picked from a list stays 13, and
// shrinking stalled on exactly that; issue 18, src/attncheck/shrink.h).
template <typename T>
rc::Gen<T> one_of(std::vector<std::pair<std::size_t, rc::Gen<T>>> alternatives);
// One of these values, simplest first; shrinks towards the first.
template <typename T>
rc::Gen<T> element(std::vector<T> values);
// One of these values by weight, listed in the order they should shrink
// (smallest first): a 13 shrinks to 11, 7, 5, ... 1, each in one step.
template <typename T>
rc::Gen<T> weighted_element(std::vector<std::pair<std::size_t, T>> values);

// A size along one dimension: 1, small, primes, and tile boundaries
// (multiples of 8, 16, 32, 64 and one either side).
rc::Gen<int64_t> dim();
// A layout recipe; inputs may broadcast (zero strides), out may not.
rc::Gen<LayoutRecipe> layout_recipe(bool input);
// Values for a tensor of this role: `offset` (magnitudes of a few hundred,
// mostly of one sign) only for v: in q or k it makes logits of 1e5 and
// more, one-hot attention that `large` already covers.
rc::Gen<ValueRecipe> value_recipe(int role = kRoleV);
// A layout for a tensor of this shape (the recipe applied).
rc::Gen<Layout> layout(std::vector<int64_t> shape, bool input);
// A whole case.
rc::Gen<Case> attention_case(CaseOptions opt);
// A (B, C, T, H, W) tensor of this shape and dtype in guarded memory, with a
// generated layout (zero strides allowed) and values.
rc::Gen<std::shared_ptr<GuardedTensor>> guarded_tensor(std::vector<int64_t> shape, DType dtype);

namespace detail {
// The index drawn as RapidCheck's weightedElement draws it, shrinking
// towards 0.
rc::Gen<std::size_t> shrinking_index(std::vector<std::size_t> weights);
}  // namespace detail

template <typename T>
rc::Gen<T> one_of(std::vector<std::pair<std::size_t, rc::Gen<T>>> alternatives) {
  std::vector<std::size_t> weights;
  std::vector<rc::Gen<T>> gens;
  for (auto& [w, g] : alternatives) weights.push_back(w), gens.push_back(std::move(g));
  return rc::gen::join(rc::gen::map(detail::shrinking_index(std::move(weights)),
                                    [gens](std::size_t i) { return gens[i]; }));
}

template <typename T>
rc::Gen<T> element(std::vector<T> values) {
  return rc::gen::map(detail::shrinking_index(std::vector<std::size_t>(values.size(), 1)),
                      [values](std::size_t i) { return values[i]; });
}

template <typename T>
rc::Gen<T> weighted_element(std::vector<std::pair<std::size_t, T>> values) {
  std::vector<std::size_t> weights;
  std::vector<T> v;
  for (auto& [w, x] : values) weights.push_back(w), v.push_back(std::move(x));
  return rc::gen::map(detail::shrinking_index(std::move(weights)),
                      [v](std::size_t i) { return v[i]; });
}

}  // namespace attncheck::gen

namespace attncheck {
// How RapidCheck prints a case in a counterexample: its one-line text.
inline void showValue(const Case& c, std::ostream& os) { os << c.to_text(); }
}  // namespace attncheck
