// lib/attncheck/onednn.so: `onednn`, attention from oneDNN primitives behind
// the plugin ABI (Debian: libdnnl-dev, oneDNN 2.6):
//
//   logits = scale * Q K^T   matmul; q and k as they lie (their strides in the
//                            memory descriptors), scale as an output scale
//   P      = softmax(logits) softmax primitive over the keys, in place
//   out    = P V             matmul; v as it lies, written into out's strides
//
// Each group's positions must form one strided dimension of the matmul
// (spatial: stride(H) == W * stride(W); spatiotemporal: likewise over T, H, W;
// temporal always). A tensor whose positions do not merge is first copied to
// a packed scratch by a oneDNN reorder (for out: computed into one and
// reordered into out), so every layout is served (ATTNCHECK_ONEDNN_TRACE=1
// says which, call by call, on stderr). float32 and bfloat16 (where
// the CPU has it); float64 and float16 are declined.
#include <attncheck/plugin.h>

#include <oneapi/dnnl/dnnl.hpp>
#ifdef ATTNCHECK_ONEDNN_OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using dnnl::memory;
using dt = memory::data_type;

struct Declined : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A tensor's five dims and strides in elements.
struct Tensor5 {
  void* data;
  memory::dims shape, strides;
};

// Size-1 dims address nothing: give them the stride just outside every other
// dim, so that the strides nest as oneDNN wants.
void normalize(const memory::dims& shape, memory::dims& strides) {
  int64_t outer = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] > 1) outer = std::max(outer, strides[d] * shape[d]);
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] == 1) strides[d] = outer;
}

Tensor5 tensor5(const DLTensor* t) {
  Tensor5 r{static_cast<char*>(t->data) + t->byte_offset, memory::dims(5), memory::dims(5)};
  int64_t s = 1;
  for (int d = 4; d >= 0; --d) {
    r.shape[d] = t->shape[d];
    r.strides[d] = t->strides ? t->strides[d] : s;
    s *= t->shape[d];
  }
  normalize(r.shape, r.strides);
  return r;
}

memory::dims compact_strides(const memory::dims& shape) {
  memory::dims s(shape.size());
  int64_t n = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) s[d] = n, n *= shape[d];
  return s;
}

int64_t numel(const memory::dims& shape) {
  int64_t n = 1;
  for (auto x : shape) n *= x;
  return n;
}

// The attended (position) dims and the group (batch) dims of the family.
std::vector<int> position_dims(attncheck_axes axes) {
  if (axes == ATTNCHECK_SPATIAL) return {3, 4};
  if (axes == ATTNCHECK_TEMPORAL) return {2};
  return {2, 3, 4};
}
std::vector<int> group_dims(attncheck_axes axes) {
  if (axes == ATTNCHECK_SPATIAL) return {0, 2};
  if (axes == ATTNCHECK_TEMPORAL) return {0, 3, 4};
  return {0};
}

// The stride of the positions as one dimension, or -1 when they do not merge.
int64_t merged_stride(const Tensor5& t, attncheck_axes axes) {
  int64_t stride = 1, expect = -1;
  const auto dims = position_dims(axes);
  for (auto it = dims.rbegin(); it != dims.rend(); ++it) {
    const int d = *it;
    if (t.shape[d] == 1) continue;
    if (expect < 0)
      stride = t.strides[d];
    else if (t.strides[d] != expect)
      return -1;
    expect = t.strides[d] * t.shape[d];
  }
  return stride;
}

int64_t positions(const Tensor5& t, attncheck_axes axes) {
  int64_t n = 1;
  for (int d : position_dims(axes)) n *= t.shape[d];
  return n;
}

int threads() {
  // One by default: verify runs one call at a time in a fresh forked child
  // (where starting an OpenMP team costs more than small cases gain), and
  // ctest runs several verifies beside each other.
  if (const char* v = std::getenv("ATTNCHECK_ONEDNN_THREADS")) {
    const int n = std::atoi(v);
    if (n > 0) return n;
  }
  return 1;
}

struct Context {
  Context() {
#ifdef ATTNCHECK_ONEDNN_OPENMP
    omp_set_num_threads(threads());
#endif
  }
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};

Context& context() {
  // Made on first use, in the process that calls (verify's forked child):
  // the parent never starts oneDNN's threads.
  static Context c;
  return c;
}

// t as it lies, or (when its positions do not merge) packed: a compact
// (B, C, T, H, W) copy made by a reorder, kept alive in scratch.
bool trace() {
  static const bool on = [] {
    const char* e = std::getenv("ATTNCHECK_ONEDNN_TRACE");
    return e && std::string(e) == "1";
  }();
  return on;
}

Tensor5 usable(const Tensor5& t, attncheck_axes axes, dt type, const char* name,
               std::vector<char>& scratch, size_t elem) {
  if (merged_stride(t, axes) >= 0) return t;
  if (trace())
    std::fprintf(stderr, "onednn: %s packed by a reorder (its positions do not merge)\n", name);
  Context& c = context();
  memory::desc src_md;
  try {
    src_md = memory::desc(t.shape, type, t.strides);
  } catch (const dnnl::error&) {
    throw Declined(std::string("oneDNN cannot describe ") + name + "'s strides");
  }
  Tensor5 packed{nullptr, t.shape, compact_strides(t.shape)};
  scratch.resize(numel(t.shape) * elem);
  packed.data = scratch.data();
  const memory::desc dst_md(packed.shape, type, packed.strides);
  memory src(src_md, c.eng, t.data), dst(dst_md, c.eng, packed.data);
  dnnl::reorder(src, dst).execute(c.strm, src, dst);
  c.strm.wait();
  return packed;
}

// The matmul operand of t: dims (groups..., heads, rows, cols) where rows
// and cols are the positions and the head's channels, in the order given.
memory::desc operand(const Tensor5& t, attncheck_axes axes, int64_t heads, bool positions_first,
                     dt type, const char* name) {
  memory::dims dims, strides;
  for (int d : group_dims(axes)) dims.push_back(t.shape[d]), strides.push_back(t.strides[d]);
  const int64_t per_head = t.shape[1] / heads, S = positions(t, axes), ps = merged_stride(t, axes);
  dims.push_back(heads), strides.push_back(per_head * t.strides[1]);
  if (positions_first) {
    dims.push_back(S), strides.push_back(ps);
    dims.push_back(per_head), strides.push_back(t.strides[1]);
  } else {
    dims.push_back(per_head), strides.push_back(t.strides[1]);
    dims.push_back(S), strides.push_back(ps);
  }
  normalize(dims, strides);
  try {
    return memory::desc(dims, type, strides);
  } catch (const dnnl::error&) {
    throw Declined(std::string("oneDNN cannot describe ") + name +
                   "'s strides as a matmul operand");
  }
}

attncheck_status attention(const attncheck_attention* call) {
  const DLDataType d = call->q->dtype;
  dt type;
  size_t elem;
  if (d.code == kDLFloat && d.bits == 32)
    type = dt::f32, elem = 4;
  else if (d.code == kDLBfloat && d.bits == 16)
    type = dt::bf16, elem = 2;
  else if (d.code == kDLFloat && d.bits == 16)
    type = dt::f16, elem = 2;
  else
    throw Declined("oneDNN 2.6 has no float64 matmul");
  Context& c = context();
  const attncheck_axes axes = call->axes;
  const int64_t heads = call->heads;
  std::vector<char> qs, ks, vs;
  const Tensor5 q = usable(tensor5(call->q), axes, type, "q", qs, elem);
  const Tensor5 k = usable(tensor5(call->k), axes, type, "k", ks, elem);
  const Tensor5 v = usable(tensor5(call->v), axes, type, "v", vs, elem);
  const Tensor5 out_real = tensor5(call->out);
  const bool out_direct = merged_stride(out_real, axes) >= 0;
  std::vector<char> os;
  Tensor5 out = out_real;
  if (!out_direct) {
    if (trace()) std::fprintf(stderr, "onednn: out computed packed, then reordered into place\n");
    out = Tensor5{nullptr, out_real.shape, compact_strides(out_real.shape)};
    os.resize(numel(out.shape) * elem);
    out.data = os.data();
  }

  // logits = scale * Q K^T: (groups..., heads, Sq, Sk), f32, packed.
  const memory::desc q_md = operand(q, axes, heads, true, type, "q");
  const memory::desc k_md = operand(k, axes, heads, false, type, "k");
  memory::dims ldims = q_md.dims();
  ldims.back() = positions(k, axes);
  const memory::desc l_md(ldims, dt::f32, compact_strides(ldims));
  std::vector<float> logits(numel(ldims));
  dnnl::primitive_attr scaled;
  scaled.set_output_scales(0, {static_cast<float>(call->scale)});
  const dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(q_md, k_md, l_md), scaled, c.eng);
  memory qm(q_md, c.eng, q.data), km(k_md, c.eng, k.data), lm(l_md, c.eng, logits.data());
  dnnl::matmul(qk_pd).execute(c.strm,
                              {{DNNL_ARG_SRC, qm}, {DNNL_ARG_WEIGHTS, km}, {DNNL_ARG_DST, lm}});

  // P = softmax over the keys (the last dim), in place.
  const int axis = static_cast<int>(ldims.size()) - 1;
  const dnnl::softmax_forward::primitive_desc sm_pd(
      dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, l_md, axis), c.eng);
  dnnl::softmax_forward(sm_pd).execute(c.strm, {{DNNL_ARG_SRC, lm}, {DNNL_ARG_DST, lm}});

  // out = P V; for bfloat16 P is rounded to bfloat16 first (the matmul's
  // source and weights share the type).
  memory pm = lm;
  std::vector<char> pbuf;
  if (type != dt::f32) {
    const memory::desc p_md(ldims, type, compact_strides(ldims));
    pbuf.resize(numel(ldims) * elem);
    pm = memory(p_md, c.eng, pbuf.data());
    dnnl::reorder(lm, pm).execute(c.strm, lm, pm);
  }
  const memory::desc v_md = operand(v, axes, heads, true, type, "v");
  const memory::desc o_md = operand(out, axes, heads, true, type, "out");
  const dnnl::matmul::primitive_desc pv_pd(dnnl::matmul::desc(pm.get_desc(), v_md, o_md), c.eng);
  memory vm(v_md, c.eng, v.data), om(o_md, c.eng, out.data);
  dnnl::matmul(pv_pd).execute(c.strm,
                              {{DNNL_ARG_SRC, pm}, {DNNL_ARG_WEIGHTS, vm}, {DNNL_ARG_DST, om}});
  if (!out_direct) {
    memory packed(memory::desc(out.shape, type, out.strides), c.eng, out.data);
    memory real;
    try {
      real = memory(memory::desc(out_real.shape, type, out_real.strides), c.eng, out_real.data);
    } catch (const dnnl::error&) {
      throw Declined("oneDNN cannot describe out's strides");
    }
    dnnl::reorder(packed, real).execute(c.strm, packed, real);
  }
  c.strm.wait();
  if (trace()) std::fprintf(stderr, "onednn: call done\n");
  return ATTNCHECK_OK;
}

attncheck_status entry(const attncheck_attention* call, char* message, size_t size) {
  auto say = [&](const std::string& s) {
    if (message && size) std::snprintf(message, size, "%s", s.c_str());
  };
  try {
    return attention(call);
  } catch (const Declined& e) {
    say(e.what());
    return ATTNCHECK_UNSUPPORTED;
  } catch (const dnnl::error& e) {
    // No primitive for this dtype on this CPU: a decline.
    if (e.status == dnnl_unimplemented) {
      const DLDataType d = call->q->dtype;
      say(std::string("oneDNN has no ") + (d.code == kDLBfloat ? "bfloat" : "float") +
          std::to_string(d.bits) + " primitive on this CPU (" + e.what() + ")");
      return ATTNCHECK_UNSUPPORTED;
    }
    say(std::string("oneDNN: ") + e.what());
    return ATTNCHECK_FAILED;
  } catch (const std::exception& e) {
    say(std::string("oneDNN adapter: ") + e.what());
    return ATTNCHECK_FAILED;
  } catch (...) {
    say("oneDNN adapter: unknown exception");
    return ATTNCHECK_FAILED;
  }
}

const attncheck_impl kImpls[] = {{"onednn", kDLCPU, entry}};

}  // namespace

extern "C" __attribute__((visibility("default"))) const attncheck_impl* attncheck_impls(
    int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  *count = 1;
  return kImpls;
}
