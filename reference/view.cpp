#include <attncheck/reference/view.h>

namespace attncheck::ref {

Tensor::Tensor(std::vector<int64_t> s) : shape(std::move(s)) {
  int64_t n = Layout::compact(shape).numel();
  data = std::make_shared<std::vector<real>>(static_cast<size_t>(n), real(0));
}

real Tensor::at(std::span<const int64_t> idx) const {
  int64_t off = 0;
  for (size_t i = 0; i < shape.size(); ++i) off = off * shape[i] + idx[i];
  return (*data)[off];
}

View Tensor::view() const {
  View v;
  v.dtype = DType::ext;
  v.base = reinterpret_cast<const std::byte*>(data->data());
  v.layout = Layout::compact(shape);
  v.owner = data;
  return v;
}

Tensor contiguous(const View& v) {
  Tensor t(v.shape());
  int64_t i = 0;
  for_each_index(v.shape(), [&](std::span<const int64_t> idx) { t[i++] = v.at(idx); });
  return t;
}

}  // namespace attncheck::ref
