// lib/attncheck/torch.so: libtorch's attention, and attention written with
// libtorch ops the way PyTorch model code writes it, behind the plugin ABI.
//
//   torch_sdpa                heads split the PyTorch way ((N, heads, S, D)),
//                             then scaled_dot_product_attention
//   torch_attnblock3d_fixed   the fixed Open-Sora-Plan AttnBlock3D core:
//                             permute, reshape, bmm, softmax over the keys,
//                             bmm, reshape, permute
//   torch_attnblock3d_legacy  the unfixed core: reshape without the permute
//                             (verify must fail it and name the bug)
//   torchscript               ATTNCHECK_TORCHSCRIPT's forward(q, k, v, heads, scale)
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/Parallel.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/softmax.h>
#include <c10/util/Exception.h>
#include <torch/csrc/api/include/torch/version.h>

#include "adapter.h"
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#include <ATen/ops/scaled_dot_product_attention.h>
#define ATTNCHECK_SDPA_HAS_SCALE 1
#else
#include <ATen/ops/_scaled_dot_product_attention.h>
#endif

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace attncheck::torch_adapter {

at::Tensor view_of(const DLTensor* t) {
  at::ScalarType type;
  const DLDataType d = t->dtype;
  if (d.lanes != 1) throw std::invalid_argument("vector dtypes are not served");
  if (d.code == kDLFloat && d.bits == 32)
    type = at::kFloat;
  else if (d.code == kDLFloat && d.bits == 64)
    type = at::kDouble;
  else if (d.code == kDLFloat && d.bits == 16)
    type = at::kHalf;
  else if (d.code == kDLBfloat && d.bits == 16)
    type = at::kBFloat16;
  else
    throw std::invalid_argument("dtype not served");
  std::vector<int64_t> shape(t->shape, t->shape + t->ndim), strides(t->ndim);
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; --i) {
    strides[i] = t->strides ? t->strides[i] : s;
    s *= t->shape[i];
  }
  return at::from_blob(static_cast<char*>(t->data) + t->byte_offset, shape, strides,
                       at::TensorOptions().dtype(type).device(at::kCPU));
}

std::string one_line(const std::string& text) {
  if (text.find('\n') == std::string::npos) return text;
  // libtorch's messages span lines; TorchScript puts a traceback before the
  // error itself: keep the last line that says something, else the first.
  const bool traceback =
      text.find("The following operation failed in the TorchScript interpreter") !=
      std::string::npos;
  std::vector<std::string> lines;
  size_t a = 0;
  while (a <= text.size()) {
    size_t b = text.find('\n', a);
    if (b == std::string::npos) b = text.size();
    std::string l = text.substr(a, b - a);
    if (l.find_first_not_of(" \t") != std::string::npos) lines.push_back(l);
    a = b + 1;
  }
  return lines.empty() ? "" : traceback ? lines.back() : lines.front();
}

void say(char* message, size_t size, const std::string& text) {
  if (message && size > 0) std::snprintf(message, size, "%s", one_line(text).c_str());
}

namespace {

int threads() {
  // One by default: verify runs one call at a time in a forked child, and
  // ctest runs several verifies beside each other.
  if (const char* v = std::getenv("ATTNCHECK_TORCH_THREADS")) {
    const int n = std::atoi(v);
    if (n > 0) return n;
  }
  return 1;
}

}  // namespace

attncheck_status at_boundary(char* message, size_t size, const std::function<attncheck_status()>& body) {
  try {
    // Per process, in the call: the parent that forks verify's children never
    // starts libtorch's thread pools, so no child inherits a dead one.
    static const bool once = (at::set_num_threads(threads()), true);
    (void)once;
    return body();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    say(message, size, "libtorch: " + one_line(what));
    return what.find("not implemented for '") != std::string::npos ? ATTNCHECK_UNSUPPORTED
                                                                   : ATTNCHECK_FAILED;
  } catch (const std::exception& e) {
    say(message, size, "libtorch: " + one_line(e.what()));
    return ATTNCHECK_FAILED;
  } catch (...) {
    say(message, size, "libtorch adapter: unknown exception");
    return ATTNCHECK_FAILED;
  }
}

namespace {

// (B, C, T, H, W) -> (N, C, S): the groups of the axes family, channels before
// positions, as AttnBlock3D lays them out. legacy: reshape without the
// permute (the unfixed code; spatiotemporal needs no permute either way).
at::Tensor to_groups(const at::Tensor& x, attncheck_axes axes, bool legacy) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  switch (axes) {
    case ATTNCHECK_SPATIAL:
      return (legacy ? x : x.permute({0, 2, 1, 3, 4})).reshape({B * T, C, H * W});
    case ATTNCHECK_TEMPORAL:
      return (legacy ? x : x.permute({0, 3, 4, 1, 2})).reshape({B * H * W, C, T});
    case ATTNCHECK_SPATIOTEMPORAL:
      return x.reshape({B, C, T * H * W});
  }
  throw std::invalid_argument("unknown axes");
}

// (N, Cv, Sq) -> (B, Cv, T, H, W) of out's shape: the inverse of to_groups.
at::Tensor from_groups(const at::Tensor& o, attncheck_axes axes, at::IntArrayRef shape,
                       bool legacy) {
  const int64_t B = shape[0], Cv = shape[1], T = shape[2], H = shape[3], W = shape[4];
  if (legacy || axes == ATTNCHECK_SPATIOTEMPORAL) return o.reshape({B, Cv, T, H, W});
  if (axes == ATTNCHECK_SPATIAL) return o.reshape({B, T, Cv, H, W}).permute({0, 2, 1, 3, 4});
  return o.reshape({B, H, W, Cv, T}).permute({0, 3, 4, 1, 2});
}

// The forward as a function of q, k and v (differentiable: the backward
// runs libtorch's autograd through it), giving out's value.
struct Args {
  attncheck_axes axes;
  int64_t heads;
  double scale;
  at::IntArrayRef out_shape;
};

at::Tensor attnblock3d(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Args& a, bool legacy) {
  const int64_t heads = a.heads;
  // (N, C, S) -> (N * heads, D, S): heads head-major within the channels.
  auto split = [&](const at::Tensor& x) {
    const int64_t N = x.size(0), C = x.size(1), S = x.size(2);
    return x.reshape({N * heads, C / heads, S});
  };
  const at::Tensor qh = split(to_groups(q, a.axes, legacy));  // (N', D, Sq)
  const at::Tensor kh = split(to_groups(k, a.axes, legacy));  // (N', D, Sk)
  const at::Tensor vh = split(to_groups(v, a.axes, legacy));  // (N', Dv, Sk)
  at::Tensor w = at::bmm(qh.permute({0, 2, 1}), kh);          // (N', Sq, Sk)
  w = w.mul(a.scale);
  w = at::softmax(w, 2);
  at::Tensor o = at::bmm(vh, w.permute({0, 2, 1}));  // (N', Dv, Sq)
  o = o.reshape({o.size(0) / heads, o.size(1) * heads, o.size(2)});
  return from_groups(o, a.axes, a.out_shape, legacy);
}

at::Tensor fixed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Args& a) {
  return attnblock3d(q, k, v, a, false);
}
at::Tensor legacy(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Args& a) {
  return attnblock3d(q, k, v, a, true);
}

// (B, C, T, H, W) -> (N, heads, S, D), the layout nn.MultiheadAttention and
// diffusers hand to scaled_dot_product_attention.
at::Tensor to_heads(const at::Tensor& x, attncheck_axes axes, int64_t heads) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  at::Tensor t;  // (N, S, C)
  switch (axes) {
    case ATTNCHECK_SPATIAL:
      t = x.permute({0, 2, 3, 4, 1}).reshape({B * T, H * W, C});
      break;
    case ATTNCHECK_TEMPORAL:
      t = x.permute({0, 3, 4, 2, 1}).reshape({B * H * W, T, C});
      break;
    case ATTNCHECK_SPATIOTEMPORAL:
      t = x.permute({0, 2, 3, 4, 1}).reshape({B, T * H * W, C});
      break;
  }
  return t.reshape({t.size(0), t.size(1), heads, C / heads}).transpose(1, 2);
}

at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Args& a) {
  const int64_t B = a.out_shape[0], Cv = a.out_shape[1], T = a.out_shape[2], H = a.out_shape[3],
                W = a.out_shape[4];
  at::Tensor qh = to_heads(q, a.axes, a.heads), kh = to_heads(k, a.axes, a.heads), vh = to_heads(v, a.axes, a.heads);
#ifdef ATTNCHECK_SDPA_HAS_SCALE
  at::Tensor o = at::scaled_dot_product_attention(qh, kh, vh, {}, 0.0, false, a.scale);
#else
  // libtorch 1.13's private function scales by 1/sqrt(D) itself and takes no
  // scale: fold the wanted one into q.
  const double D = static_cast<double>(qh.size(3));
  at::Tensor o =
      std::get<0>(at::_scaled_dot_product_attention(qh.mul(a.scale * std::sqrt(D)), kh, vh));
#endif
  // (N, heads, Sq, Dv) -> (N, Sq, Cv) -> (B, Cv, T, H, W)
  o = o.transpose(1, 2).reshape({o.size(0), o.size(2), Cv});
  switch (a.axes) {
    case ATTNCHECK_SPATIAL:
      o = o.reshape({B, T, H, W, Cv}).permute({0, 4, 1, 2, 3});
      break;
    case ATTNCHECK_TEMPORAL:
      o = o.reshape({B, H, W, T, Cv}).permute({0, 4, 3, 1, 2});
      break;
    case ATTNCHECK_SPATIOTEMPORAL:
      o = o.reshape({B, T, H, W, Cv}).permute({0, 4, 1, 2, 3});
      break;
  }
  return o;
}

using Forward = at::Tensor (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, const Args&);

template <Forward F>
attncheck_status entry(const attncheck_attention* call, char* message, size_t size) {
  return at_boundary(message, size, [&] {
    at::Tensor out = view_of(call->out);
    out.copy_(F(view_of(call->q), view_of(call->k), view_of(call->v),
                {call->axes, call->heads, call->scale, out.sizes()}));
    return ATTNCHECK_OK;
  });
}

// The backward through libtorch's autograd: q, k and v copied into leaves
// (so a broadcast or shared input gets its full logical gradient, as the
// spec asks), the forward recomputed, out.backward(dout).
template <Forward F>
attncheck_status backward_entry(const attncheck_attention_backward* call, char* message, size_t size) {
  return at_boundary(message, size, [&] {
    const auto leaf = [](const DLTensor* t) {
      return view_of(t).detach().clone(at::MemoryFormat::Contiguous).requires_grad_(true);
    };
    const at::Tensor q = leaf(call->q), k = leaf(call->k), v = leaf(call->v), dout = view_of(call->dout);
    const at::Tensor o = F(q, k, v, {call->axes, call->heads, call->scale, dout.sizes()});
    o.backward(dout);
    view_of(call->dq).copy_(q.grad());
    view_of(call->dk).copy_(k.grad());
    view_of(call->dv).copy_(v.grad());
    return ATTNCHECK_OK;
  });
}

attncheck_status torchscript_entry(const attncheck_attention* call, char* message, size_t size) {
  return at_boundary(message, size, [&] { return torchscript_attention(call, message, size); });
}

const attncheck_impl kImpls[] = {
    {"torch_sdpa", kDLCPU, entry<sdpa>},
    {"torch_attnblock3d_fixed", kDLCPU, entry<fixed>},
    {"torch_attnblock3d_legacy", kDLCPU, entry<legacy>},
    {"torchscript", kDLCPU, torchscript_entry},
};

const attncheck_backward_impl kBackward[] = {
    {"torch_sdpa", kDLCPU, backward_entry<sdpa>},
    {"torch_attnblock3d_fixed", kDLCPU, backward_entry<fixed>},
    {"torch_attnblock3d_legacy", kDLCPU, backward_entry<legacy>},
};

}  // namespace

}  // namespace attncheck::torch_adapter

extern "C" __attribute__((visibility("default"))) const attncheck_impl* attncheck_impls(
    int abi_version, size_t* count) {
  using namespace attncheck::torch_adapter;
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  // torchscript is last: left out when its module is named but does not load.
  *count = sizeof kImpls / sizeof kImpls[0] - (torchscript_offered() ? 0 : 1);
  return kImpls;
}

extern "C" __attribute__((visibility("default"))) const attncheck_backward_impl* attncheck_backward_impls(
    int abi_version, size_t* count) {
  using namespace attncheck::torch_adapter;
  if (abi_version != ATTNCHECK_BACKWARD_ABI_VERSION) return nullptr;
  *count = sizeof kBackward / sizeof kBackward[0];
  return kBackward;
}
