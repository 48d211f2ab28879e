#include <attncheck/dlview.h>

#include <stdexcept>

namespace attncheck {

ref::DType ref_dtype(DLDataType t) {
  if (t.lanes == 1 && t.code == kDLFloat && t.bits == 32) return ref::DType::f32;
  if (t.lanes == 1 && t.code == kDLFloat && t.bits == 64) return ref::DType::f64;
  if (t.lanes == 1 && t.code == kDLFloat && t.bits == 16) return ref::DType::f16;
  if (t.lanes == 1 && t.code == kDLBfloat && t.bits == 16) return ref::DType::bf16;
  throw std::invalid_argument("dtype (code " + std::to_string(t.code) + ", bits " +
                              std::to_string(t.bits) + ") is not f32, f64, f16 or bf16");
}

DLDataType dl_dtype(ref::DType t) {
  switch (t) {
    case ref::DType::f32: return {kDLFloat, 32, 1};
    case ref::DType::f64: return {kDLFloat, 64, 1};
    case ref::DType::f16: return {kDLFloat, 16, 1};
    case ref::DType::bf16: return {kDLBfloat, 16, 1};
    case ref::DType::ext: break;
  }
  throw std::invalid_argument("ext has no DLPack dtype");
}

ref::View view_of(const DLTensor& t) {
  ref::View v;
  v.dtype = ref_dtype(t.dtype);
  const int64_t size = static_cast<int64_t>(ref::size_of(v.dtype));
  std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
  v.layout = Layout::compact(shape, static_cast<int64_t>(t.byte_offset) / size);
  if (t.strides) v.layout.stride.assign(t.strides, t.strides + t.ndim);
  v.base = static_cast<const std::byte*>(t.data) + static_cast<int64_t>(t.byte_offset) % size;
  return v;
}

}  // namespace attncheck
