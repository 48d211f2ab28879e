// Guarded memory: a case's tensors placed, poisoned and checked (guarded.h);
// the mappings are mapping.cpp's, the values values.cpp's.
#include <attncheck/dlview.h>
#include <attncheck/guarded.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace attncheck {

GuardedCase::GuardedCase(const Case& c, const IndexTransform& transform, size_t max_bytes)
    : case_(c) {
  case_.normalize();
  if (transform && case_.share != Share::none)
    throw std::logic_error("guarded case: value transforms need unshared inputs");
  elem_ = ref::size_of(case_.dtype);

  // Which buffer each tensor lives in, and the layouts within it.
  const bool kv = case_.share == Share::kv_overlap;
  Layout kv_layout;
  if (kv) {
    auto s = case_.shape(kRoleK);
    s[1] = case_.C + case_.Cv - case_.kv_overlap;
    kv_layout = make_layout(case_.layout[kRoleK], s);
  }
  const int roles = case_.roles();
  for (int r = 0; r < roles; ++r) {
    auto& t = t_[r];
    t.shape = case_.shape(r);
    if (kv && (r == kRoleK || r == kRoleV)) {
      t.layout = kv_layout;
      t.layout.shape = t.shape;
      if (r == kRoleV) t.layout.offset += (case_.C - case_.kv_overlap) * kv_layout.stride[1];
    } else {
      t.layout = make_layout(case_.layout[r], t.shape);
    }
    t.layout.validate();
  }
  int nbuf = 0;
  t_[kRoleQ].buffer = nbuf++;
  t_[kRoleK].buffer = case_.share == Share::qk_same ? t_[kRoleQ].buffer : nbuf++;
  t_[kRoleV].buffer = kv ? t_[kRoleK].buffer : nbuf++;
  for (int r = kRoleOut; r < roles; ++r) t_[r].buffer = nbuf++;  // out; dout, dq, dk, dv
  buffers_.resize(nbuf);
  for (int r = 0; r < roles; ++r) buffers_[t_[r].buffer].roles.push_back(r);
  for (int r : {kRoleOut, kRoleDq, kRoleDk, kRoleDv})
    if (r < roles) buffers_[t_[r].buffer].input = false;

  size_t total_bytes = 0;
  for (auto& b : buffers_) {
    // Elements [lo, hi] (relative to data) of every tensor in the buffer.
    int64_t lo = INT64_MAX, hi = 0, before = 0;
    for (int r : b.roles) {
      lo = std::min(lo, t_[r].layout.offset);
      hi = std::max(hi, t_[r].layout.max_offset());
    }
    before = lo;  // elements between data and the first element
    const int r0 = b.roles.front();
    const bool misalign = case_.layout[r0].misalign && !case_.flush_high && elem_ < 16;
    const size_t span = static_cast<size_t>(hi - lo + 1) * elem_;
    if (span > max_bytes || (total_bytes += span) > max_bytes)
      throw std::invalid_argument("case needs more than " + std::to_string(max_bytes >> 20) +
                                  " MiB of tensor memory");
    std::byte* data = nullptr;
    auto m = make_mapping(span, before, elem_, case_.flush_high, misalign,
                          b.input ? kInputPoison : kOutCanary, &data);
    for (int r : b.roles) t_[r].data = data;
    b.map = std::move(m);
  }

  // Values, written through each tensor's layout at its logical indices.
  for (int r : {kRoleQ, kRoleK, kRoleV, kRoleDout}) {
    if (r >= roles) continue;
    auto& t = t_[r];
    const ValueRecipe& recipe = case_.values[r == kRoleDout ? 3 : r];
    const Geometry geometry = case_.geometry(r);
    const int64_t positions = geometry.positions();
    const int broadcast = case_.layout[r].broadcast;
    const uint64_t salt = kv && r == kRoleV ? kRoleK : (case_.share == Share::qk_same ? kRoleQ : r);
    ref::for_each_index(t.shape, [&](std::span<const int64_t> s) {
      std::array<int64_t, 5> idx{s[0], s[1], s[2], s[3], s[4]};
      for (int d = 0; d < 5; ++d)
        if (broadcast & (1 << d)) idx[d] = 0;  // one value along a broadcast dim
      if (kv && r == kRoleV) idx[1] += case_.C - case_.kv_overlap;  // buffer channel
      ValueRecipe rr = recipe;
      if (transform && !transform(r, idx)) rr.seed = ~rr.seed;
      const double x = draw_value(rr, salt, idx, geometry.position(idx), positions);
      ref::write(case_.dtype, t.data + t.layout.index(s) * static_cast<int64_t>(elem_), x);
    });
  }
  for (auto& b : buffers_)
    if (b.input) b.checksum = region_checksum(b);
  // Outputs: which bytes are elements.
  for (auto& b : buffers_) {
    if (b.input) continue;
    b.is_element.assign(b.map->region_size, false);
    const auto& t = t_[b.roles.front()];
    ref::for_each_index(t.shape, [&](std::span<const int64_t> s) {
      const size_t at = static_cast<size_t>(t.data + t.layout.index(s) * static_cast<int64_t>(elem_) -
                                            b.map->region);
      for (size_t i = 0; i < elem_; ++i) b.is_element[at + i] = true;
    });
  }

  // The DLTensors.
  const bool null_strides_if_compact = (case_.values[0].seed >> 3) & 1;
  for (int r = 0; r < roles; ++r) {
    auto& t = t_[r];
    for (int d = 0; d < 5; ++d) t.strides[d] = t.layout.stride[d];
    t.byte_offset = static_cast<uint64_t>(t.layout.offset) * elem_;
    t.dl.data = t.data;
    t.dl.device = {kDLCPU, 0};
    t.dl.ndim = 5;
    t.dl.dtype = dl_dtype(case_.dtype);
    t.dl.shape = t.shape.data();
    const bool compact = t.layout.offset == 0 && t.layout.is_compact() &&
                         t.layout.stride == Layout::compact(t.shape).stride;
    t.dl.strides = compact && null_strides_if_compact ? nullptr : t.strides.data();
    t.dl.byte_offset = t.byte_offset;
  }
  if (case_.share == Share::qk_same) t_[kRoleK].dl = t_[kRoleQ].dl;
  call_ = {static_cast<attncheck_axes>(case_.axes), &t_[kRoleQ].dl, &t_[kRoleK].dl, &t_[kRoleV].dl,
           &t_[kRoleOut].dl, case_.heads, case_.scale};
  if (case_.backward)
    backward_call_ = {static_cast<attncheck_axes>(case_.axes), &t_[kRoleQ].dl, &t_[kRoleK].dl, &t_[kRoleV].dl,
                      &t_[kRoleOut].dl, &t_[kRoleDout].dl, &t_[kRoleDq].dl, &t_[kRoleDk].dl, &t_[kRoleDv].dl,
                      case_.heads, case_.scale};
}

attncheck_attention_backward* GuardedCase::backward_call() {
  if (!case_.backward) throw std::logic_error("guarded case: backward_call() of a forward case");
  return &backward_call_;
}

void GuardedCase::freeze_out() {
  if (!case_.backward) throw std::logic_error("guarded case: freeze_out() of a forward case");
  auto& b = buffers_[t_[kRoleOut].buffer];
  b.input = true;
  b.checksum = region_checksum(b);
}

ref::View GuardedCase::view(int role) const {
  ref::View v;
  v.dtype = case_.dtype;
  v.base = t_[role].data;
  v.layout = t_[role].layout;
  return v;
}

void GuardedCase::protect_inputs(bool read_only) {
  for (auto& b : buffers_)
    if (b.input) mprotect(b.map->region, b.map->region_size, read_only ? PROT_READ : PROT_READ | PROT_WRITE);
}

uint64_t GuardedCase::region_checksum(const Buffer& b) const {
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const uint64_t*>(b.map->region);
  for (size_t i = 0; i < b.map->region_size / 8; ++i) h = splitmix64(h ^ p[i]);
  return h;
}

void GuardedCase::reset_outputs(unsigned char canary) {
  out_canary_ = canary;
  for (auto& b : buffers_)
    if (!b.input) std::memset(b.map->region, canary, b.map->region_size);
}

void GuardedCase::refill_around_inputs(unsigned char fill) {
  input_fill_ = fill;
  for (auto& b : buffers_) {
    if (!b.input) continue;
    std::vector<bool> element(b.map->region_size, false);
    for (int r : b.roles) {
      const auto& t = t_[r];
      ref::for_each_index(t.shape, [&](std::span<const int64_t> s) {
        const size_t at = static_cast<size_t>(t.data + t.layout.index(s) * static_cast<int64_t>(elem_) -
                                              b.map->region);
        for (size_t i = 0; i < elem_; ++i) element[at + i] = true;
      });
    }
    for (size_t i = 0; i < b.map->region_size; ++i)
      if (!element[i]) b.map->region[i] = static_cast<std::byte>(fill);
    b.checksum = region_checksum(b);
  }
}

std::string GuardedCase::check_memory() const {
  for (const auto& b : buffers_) {
    if (b.input) {
      if (region_checksum(b) != b.checksum) {
        std::string names;
        for (int r : b.roles) names += (names.empty() ? "" : "/") + std::string(role_name(r));
        return "wrote to " + names + " (an input changed during the call)";
      }
      continue;
    }
    const int role = b.roles.front();
    const std::string name = role_name(role);
    const auto& t = t_[role];
    const int64_t first = t.data + t.layout.offset * static_cast<int64_t>(elem_) - b.map->region;
    const int64_t last = t.data + (t.layout.max_offset() + 1) * static_cast<int64_t>(elem_) - b.map->region;
    for (size_t i = 0; i < b.map->region_size; ++i) {
      if (static_cast<unsigned char>(b.map->region[i]) == out_canary_ || b.is_element[i]) continue;
      const int64_t at = static_cast<int64_t>(i);
      if (at < first) return "wrote " + std::to_string(first - at) + " bytes before " + name + "'s first element";
      if (at >= last) return "wrote " + std::to_string(at - last + 1) + " bytes past " + name + "'s last element";
      return "wrote between " + name + "'s elements (a gap byte " + std::to_string(at - first) +
             " bytes into the view changed)";
    }
  }
  return "";
}

std::vector<int64_t> GuardedCase::unwritten(int role) const {
  const auto& t = t_[role];
  const std::vector<std::byte> canary(elem_, std::byte{out_canary_});
  std::vector<int64_t> out;
  int64_t flat = 0;
  ref::for_each_index(t.shape, [&](std::span<const int64_t> s) {
    const int64_t i = flat++;
    const std::byte* p = t.data + t.layout.index(s) * static_cast<int64_t>(elem_);
    if (std::memcmp(p, canary.data(), elem_) == 0) out.push_back(i);
  });
  return out;
}

std::string GuardedCase::describe_address(const void* addr, bool write) const {
  const auto* a = static_cast<const std::byte*>(addr);
  for (const auto& b : buffers_) {
    const auto& m = *b.map;
    if (a < m.base || a >= m.base + m.total) continue;
    std::string names;
    for (int r : b.roles) names += (names.empty() ? "" : "/") + std::string(role_name(r));
    const char* verb = write ? "wrote" : "read";
    if (a < m.region) return std::string(verb) + " before the start of " + names;
    if (a >= m.region + m.region_size) return std::string(verb) + " past the end of " + names;
    if (write && b.input) return "wrote to " + names;
    return std::string(verb) + " inside " + names + "'s mapping";
  }
  return "";
}

bool GuardedCase::readable(const ref::View& v) const {
  const std::byte* lo = v.base + v.layout.offset * static_cast<int64_t>(ref::size_of(v.dtype));
  const std::byte* hi = v.base + (v.layout.max_offset() + 1) * static_cast<int64_t>(ref::size_of(v.dtype));
  for (const auto& b : buffers_)
    if (lo >= b.map->region && hi <= b.map->region + b.map->region_size) return true;
  return false;
}

std::vector<std::pair<const Mapping*, bool>> GuardedCase::mappings() const {
  std::vector<std::pair<const Mapping*, bool>> m;
  for (const auto& b : buffers_) m.emplace_back(b.map.get(), b.input);
  return m;
}

GuardedTensor::GuardedTensor(const std::vector<int64_t>& shape, const LayoutRecipe& recipe, DType dtype,
                             const ValueRecipe& values, bool flush_high)
    : dtype_(dtype), shape_(shape) {
  if (shape.size() != 5) throw std::invalid_argument("guarded tensor: shape must have 5 dimensions (B, C, T, H, W)");
  for (int64_t s : shape)
    if (s < 1) throw std::invalid_argument("guarded tensor: sizes must be >= 1");
  layout_ = make_layout(recipe, shape);
  layout_.validate();
  const size_t elem = ref::size_of(dtype);
  const size_t span = static_cast<size_t>(layout_.max_offset() - layout_.offset + 1) * elem;
  if (span > (size_t{1} << 30)) throw std::invalid_argument("guarded tensor: more than 1 GiB");
  std::byte* data = nullptr;
  map_ = make_mapping(span, layout_.offset, elem, flush_high, recipe.misalign && !flush_high && elem < 16,
                      kInputPoison, &data);
  data_ = data;
  ref::for_each_index(shape, [&](std::span<const int64_t> s) {
    std::array<int64_t, 5> idx{s[0], s[1], s[2], s[3], s[4]};
    for (int d = 0; d < 5; ++d)
      if (recipe.broadcast & (1 << d)) idx[d] = 0;
    const double x = draw_value(values, 0, idx, 0, 1);
    ref::write(dtype, data_ + layout_.index(s) * static_cast<int64_t>(elem), x);
  });
  for (int d = 0; d < 5; ++d) strides_[d] = layout_.stride[d];
  dl_.data = data_;
  dl_.device = {kDLCPU, 0};
  dl_.ndim = 5;
  dl_.dtype = dl_dtype(dtype);
  dl_.shape = shape_.data();
  dl_.strides = strides_.data();
  dl_.byte_offset = static_cast<uint64_t>(layout_.offset) * elem;
}

ref::View GuardedTensor::view() const {
  ref::View v;
  v.dtype = dtype_;
  v.base = data_;
  v.layout = layout_;
  return v;
}

void GuardedTensor::protect(bool read_only) {
  mprotect(map_->region, map_->region_size, read_only ? PROT_READ : PROT_READ | PROT_WRITE);
}

ref::Tensor read_out(const ref::View& v) { return ref::contiguous(v); }

}  // namespace attncheck
