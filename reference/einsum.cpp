#include <attncheck/reference/einsum.h>

#include <stdexcept>
#include <string>

namespace attncheck::ref {

namespace {

struct Spec {
  std::vector<std::string> inputs;
  std::string output;
};

Spec parse(std::string_view spec) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("einsum '" + std::string(spec) + "': " + why);
  };
  auto arrow = spec.find("->");
  if (arrow == std::string_view::npos) throw bad("missing '->'");
  Spec s;
  s.output = std::string(spec.substr(arrow + 2));
  std::string_view lhs = spec.substr(0, arrow);
  for (;;) {
    auto comma = lhs.find(',');
    s.inputs.emplace_back(lhs.substr(0, comma));
    if (comma == std::string_view::npos) break;
    lhs.remove_prefix(comma + 1);
  }
  for (const auto& term : s.inputs)
    for (char c : term)
      if (!std::isalpha(static_cast<unsigned char>(c)))
        throw bad(std::string("'") + c + "' is not an index letter");
  for (size_t i = 0; i < s.output.size(); ++i) {
    char c = s.output[i];
    if (!std::isalpha(static_cast<unsigned char>(c)))
      throw bad(std::string("'") + c + "' is not an index letter");
    if (s.output.find(c, i + 1) != std::string::npos)
      throw bad(std::string("output index '") + c + "' is repeated");
    bool found = false;
    for (const auto& term : s.inputs) found |= term.find(c) != std::string::npos;
    if (!found) throw bad(std::string("output index '") + c + "' is in no operand");
  }
  return s;
}

}  // namespace

Tensor einsum(std::string_view spec_text, std::span<const View> ops) {
  const Spec spec = parse(spec_text);
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("einsum '" + std::string(spec_text) + "': " + why);
  };
  if (spec.inputs.size() != ops.size())
    throw bad(std::to_string(spec.inputs.size()) + " operands in the spec, " +
              std::to_string(ops.size()) + " given");
  // Every letter's size, checked for agreement across operands.
  int64_t size[128];
  for (auto& s : size) s = -1;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (static_cast<int>(spec.inputs[i].size()) != ops[i].rank())
      throw bad("operand " + std::to_string(i) + " has rank " +
                std::to_string(ops[i].rank()) + ", the spec names " +
                std::to_string(spec.inputs[i].size()) + " indices");
    for (size_t d = 0; d < spec.inputs[i].size(); ++d) {
      unsigned char c = spec.inputs[i][d];
      int64_t n = ops[i].shape()[d];
      if (size[c] >= 0 && size[c] != n)
        throw bad(std::string("index '") + static_cast<char>(c) + "' has sizes " +
                  std::to_string(size[c]) + " and " + std::to_string(n));
      size[c] = n;
    }
  }
  std::string summed;
  for (const auto& term : spec.inputs)
    for (char c : term)
      if (spec.output.find(c) == std::string::npos && summed.find(c) == std::string::npos)
        summed += c;
  // Each operand read once into a packed tensor of its values (an operand
  // element is used by many output elements).
  std::vector<Tensor> packed;
  for (const View& op : ops) packed.push_back(contiguous(op));
  // Per operand, the element stride of each letter in its packed tensor (a
  // repeated letter walks the diagonal, so its strides add up).
  auto letter_strides = [&](const std::string& letters) {
    std::vector<std::vector<int64_t>> st(ops.size(), std::vector<int64_t>(letters.size(), 0));
    for (size_t i = 0; i < ops.size(); ++i) {
      int64_t stride = 1;
      for (size_t d = spec.inputs[i].size(); d-- > 0;) {
        auto pos = letters.find(spec.inputs[i][d]);
        if (pos != std::string::npos) st[i][pos] += stride;
        stride *= packed[i].shape[d];
      }
    }
    return st;
  };
  const auto out_strides = letter_strides(spec.output);
  const auto sum_strides = letter_strides(summed);
  std::vector<int64_t> out_shape, sum_shape;
  for (char c : spec.output) out_shape.push_back(size[static_cast<unsigned char>(c)]);
  for (char c : summed) sum_shape.push_back(size[static_cast<unsigned char>(c)]);

  Tensor result(out_shape);
  int64_t flat = 0;
  std::vector<int64_t> at(ops.size());  // each operand's offset at the output index
  auto element = [&](size_t i, int64_t off) { return packed[i][off]; };
  for_each_index(out_shape, [&](std::span<const int64_t> oidx) {
    for (size_t i = 0; i < ops.size(); ++i) {
      at[i] = 0;
      for (size_t d = 0; d < oidx.size(); ++d) at[i] += oidx[d] * out_strides[i][d];
    }
    NeumaierSum acc;
    if (sum_shape.size() == 1) {
      // One summed letter (every contraction attention makes): the same sum
      // as below, walked with a plain loop.
      for (int64_t x = 0; x < sum_shape[0]; ++x) {
        real product = 1;
        for (size_t i = 0; i < ops.size(); ++i) product *= element(i, at[i] + x * sum_strides[i][0]);
        acc.add(product);
      }
    } else {
      for_each_index(sum_shape, [&](std::span<const int64_t> sidx) {
        real product = 1;
        for (size_t i = 0; i < ops.size(); ++i) {
          int64_t off = at[i];
          for (size_t d = 0; d < sidx.size(); ++d) off += sidx[d] * sum_strides[i][d];
          product *= element(i, off);
        }
        acc.add(product);
      });
    }
    result[flat++] = acc.value();
  });
  return result;
}

}  // namespace attncheck::ref
