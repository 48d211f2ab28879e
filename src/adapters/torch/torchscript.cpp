// `torchscript`: a user's TorchScript module behind the ABI. The file named by
// ATTNCHECK_TORCHSCRIPT is loaded once, when the plugin is loaded (verify's
// forked children inherit it); its forward(q, k, v, heads, scale) returns out.
// A file that is named but does not load (missing, not TorchScript, no
// forward, wrong arity) is a load error: the plugin says why on stderr and
// does not offer `torchscript`, so `verify --impl torchscript` exits 2. With
// the variable unset, `torchscript` is offered and each call fails saying so.
// A forward with a sixth argument, axes: str ("spatial", "temporal",
// "spatiotemporal"), serves all three families; one without serves spatial
// (AttnBlock3D's) and declines the others.
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "adapter.h"

namespace attncheck::torch_adapter {

namespace {

std::optional<torch::jit::Module> g_module;
std::string g_error;  // why there is no module
bool g_takes_axes = false;

std::string shape_text(at::IntArrayRef s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + (s.size() == 1 ? ",)" : ")");
}

}  // namespace

namespace {

void load_module() {
  const char* path = std::getenv("ATTNCHECK_TORCHSCRIPT");
  if (!path || !*path) {
    g_error =
        "ATTNCHECK_TORCHSCRIPT is not set: name a TorchScript file whose forward(q, k, v, heads, "
        "scale) "
        "returns out (examples/torchscript/make_attnblock3d.py writes two)";
    return;
  }
  const std::string where = std::string("ATTNCHECK_TORCHSCRIPT=") + path + ": ";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    g_error = where + "no such file";
    return;
  }
  // Each call is the module's first run in a fresh forked child, where the
  // profiling executor only profiles: optimizing the graph there is wasted
  // (2-3x the time of a verify run). ATTNCHECK_TORCHSCRIPT_OPTIMIZE=1 keeps
  // it (with --no-fork, later calls then run the optimized graph).
  const char* optimize = std::getenv("ATTNCHECK_TORCHSCRIPT_OPTIMIZE");
  if (!optimize || std::string(optimize) != "1") torch::jit::setGraphExecutorOptimize(false);
  try {
    torch::jit::Module m = torch::jit::load(path);
    m.eval();
    const auto method = m.find_method("forward");
    if (!method) {
      g_error = where + "the module has no forward method";
      return;
    }
    const size_t args = method->function().getSchema().arguments().size();  // self included
    if (args != 6 && args != 7) {
      g_error = where + "forward takes " + std::to_string(args - 1) +
                " arguments; attncheck calls forward(q, k, v, heads, scale[, axes])";
      return;
    }
    g_takes_axes = args == 7;
    g_module = std::move(m);
  } catch (const c10::Error& e) {
    g_error = where + "cannot load: " + one_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    g_error = where + "cannot load: " + one_line(e.what());
  }
}

}  // namespace

bool torchscript_offered() {
  static const bool offered = [] {
    load_module();
    const char* path = std::getenv("ATTNCHECK_TORCHSCRIPT");
    if (g_module || !path || !*path) return true;
    std::fprintf(stderr, "torch.so: `torchscript` is not offered: %s\n", g_error.c_str());
    return false;
  }();
  return offered;
}

attncheck_status torchscript_attention(const attncheck_attention* call, char* message,
                                       size_t size) {
  if (!g_module) {
    say(message, size, g_error);
    return ATTNCHECK_FAILED;
  }
  static const char* const kAxes[] = {"spatial", "temporal", "spatiotemporal"};
  if (!g_takes_axes && call->axes != ATTNCHECK_SPATIAL) {
    say(message, size,
        "the module's forward(q, k, v, heads, scale) has no axes argument: spatial only");
    return ATTNCHECK_UNSUPPORTED;
  }
  c10::InferenceMode guard;
  const at::Tensor q = view_of(call->q), k = view_of(call->k), v = view_of(call->v);
  at::Tensor out = view_of(call->out);
  std::vector<c10::IValue> args{q, k, v, call->heads, call->scale};
  if (g_takes_axes) args.emplace_back(std::string(kAxes[call->axes]));
  const c10::IValue r = g_module->forward(std::move(args));
  if (!r.isTensor()) {
    say(message, size, "the module's forward returned " + r.tagKind() + ", not a Tensor");
    return ATTNCHECK_FAILED;
  }
  const at::Tensor o = r.toTensor();
  if (o.sizes() != out.sizes()) {
    say(message, size,
        "the module's forward returned shape " + shape_text(o.sizes()) + ", expected " +
            shape_text(out.sizes()) + " (B, Cv, Tq, Hq, Wq)");
    return ATTNCHECK_FAILED;
  }
  if (o.scalar_type() != out.scalar_type()) {
    say(message, size,
        std::string("the module's forward returned ") + c10::toString(o.scalar_type()) +
            ", expected " + c10::toString(out.scalar_type()));
    return ATTNCHECK_FAILED;
  }
  out.copy_(o);
  return ATTNCHECK_OK;
}

}  // namespace attncheck::torch_adapter
