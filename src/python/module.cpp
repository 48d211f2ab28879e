// attncheck._core: the Python package's bridge to the checker (pybind11).
//
// A thin layer. The package (python/attncheck/) wraps the user's function
// in a Python callable, the bridge, and hands it here; it becomes one
// implementation of the plugin ABI (`given` in VerifyOptions) whose calls
// convert the case's DLTensors into arrays over the same memory and call the
// bridge. Everything else (cases, guarded memory, forked calls, properties,
// shrinking, diagnosis, the report) is the C++ checker's, unchanged.
#include <attncheck/case.h>
#include <attncheck/loader.h>
#include <attncheck/runner.h>
#include <attncheck/verify.h>
#include <attncheck/verify_args.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <sstream>
#include <stdexcept>

namespace py = pybind11;

namespace {

using attncheck::ImplementationError;

// The bridge of the verify in progress (one at a time: a verify holds the
// interpreter throughout, so it cannot be re-entered from another thread).
py::object* g_bridge = nullptr;
py::object* g_backward_bridge = nullptr;  // the function's autograd backward, or null
std::string g_array = "torch";  // "torch": DLPack capsules; "numpy": arrays
// Test-only: false hands byte_offset to the array library as it is, as a
// bridge that trusts from_dlpack would (libtorch before 2.x drops it).
bool g_fold_offsets = true;
const attncheck_attention* g_current = nullptr;  // the call in progress
bool g_interrupted = false;  // a KeyboardInterrupt reached an in-process call

const DLTensor* role_tensor(const attncheck_attention* c, int role) {
  switch (role) {
    case 0: return c->q;
    case 1: return c->k;
    case 2: return c->v;
  }
  return c->out;
}

// A DLManagedTensor with its own shape and strides, freed by its deleter.
struct Managed {
  DLManagedTensor m{};
  int64_t shape[5]{};
  int64_t strides[5]{};
};

// The element strides of t (compact row-major when t has none).
void strides_of(const DLTensor& t, int64_t* out) {
  int64_t s = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    out[d] = t.strides ? t.strides[d] : s;
    s *= t.shape[d];
  }
}

// The DLPack capsule ("dltensor") of t over the same memory. The pointer
// is data + byte_offset, byte_offset 0: libtorch's from_dlpack ignored
// byte_offset before 2.x (pytorch#168177), so it is never relied on.
py::object capsule(const DLTensor* t) {
  auto* m = new Managed;
  m->m.dl_tensor = *t;
  for (int d = 0; d < t->ndim && d < 5; ++d) m->shape[d] = t->shape[d];
  strides_of(*t, m->strides);
  m->m.dl_tensor.shape = m->shape;
  m->m.dl_tensor.strides = m->strides;
  if (g_fold_offsets) {
    m->m.dl_tensor.data = static_cast<char*>(t->data) + t->byte_offset;
    m->m.dl_tensor.byte_offset = 0;
  }
  m->m.manager_ctx = m;
  m->m.deleter = [](DLManagedTensor* self) { delete static_cast<Managed*>(self->manager_ctx); };
  // A capsule nobody consumed frees its tensor; a consumer renames it
  // ("used_dltensor") and calls the deleter itself.
  PyObject* cap = PyCapsule_New(&m->m, "dltensor", [](PyObject* c) {
    if (PyCapsule_IsValid(c, "dltensor")) {
      auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
      mt->deleter(mt);
    }
  });
  if (!cap) {
    delete m;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(cap);
}

// A NumPy array over t's memory (inputs read-only); None for a dtype NumPy
// does not have (bfloat16).
py::object numpy_array(const DLTensor* t, bool writable) {
  const char* name = nullptr;
  if (t->dtype.code == kDLFloat && t->dtype.bits == 32) name = "float32";
  else if (t->dtype.code == kDLFloat && t->dtype.bits == 64) name = "float64";
  else if (t->dtype.code == kDLFloat && t->dtype.bits == 16) name = "float16";
  if (!name) return py::none();
  const py::ssize_t item = t->dtype.bits / 8;
  int64_t strides[5];
  strides_of(*t, strides);
  std::vector<py::ssize_t> shape(t->shape, t->shape + t->ndim), bytes(t->ndim);
  for (int d = 0; d < t->ndim; ++d) bytes[d] = strides[d] * item;
  char* data = static_cast<char*>(t->data) + t->byte_offset;
  // base: a capsule that owns nothing, so NumPy neither copies nor frees.
  py::capsule base(data, [](void*) {});
  py::array a(py::dtype(name), shape, bytes, data, base);
  if (!writable) a.attr("flags").attr("writeable") = false;
  return a;
}

// The ABI function of the Python implementation. The bridge returns
// (status, message): status 0 or 1 as the ABI's, -1 with the finding in
// the implementation's words (an exception, a wrong result), thrown on as
// an ImplementationError so the runner reports it as it is; -2 a Ctrl-C
// that reached an in-process call.
attncheck_status py_attention(const attncheck_attention* call, char* message, size_t size) {
  py::gil_scoped_acquire gil;
  struct Current {
    explicit Current(const attncheck_attention* c) { g_current = c; }
    ~Current() { g_current = nullptr; }
  } current(call);
  std::pair<int, std::string> r;
  try {
    py::object args[4];
    for (int role = 0; role < 4; ++role)
      args[role] = g_array == "numpy" ? numpy_array(role_tensor(call, role), role == 3)
                                      : capsule(role_tensor(call, role));
    r = (*g_bridge)(args[0], args[1], args[2], args[3], call->heads, call->scale, attncheck::ref::name_of(static_cast<attncheck::Axes>(call->axes)))
            .cast<std::pair<int, std::string>>();
  } catch (py::error_already_set& e) {
    throw ImplementationError(std::string("attncheck's Python bridge failed: ") + e.what());
  } catch (const py::cast_error& e) {
    throw ImplementationError(std::string("attncheck's Python bridge failed: ") + e.what());
  }
  if (r.first == -2) {  // Ctrl-C during an in-process call: no verdict; verify stops
    g_interrupted = true;
    return ATTNCHECK_UNSUPPORTED;
  }
  if (r.first < 0) throw ImplementationError(r.second);
  if (size > 0) {
    const size_t n = std::min(r.second.size(), size - 1);
    std::memcpy(message, r.second.data(), n);
    message[n] = '\0';
  }
  return static_cast<attncheck_status>(r.first);
}

// The backward ABI function of the Python implementation: the backward
// bridge (torch's autograd through the function) gets the eight tensors as
// DLPack capsules and answers as the forward's bridge does.
attncheck_status py_backward(const attncheck_attention_backward* call, char* message, size_t size) {
  py::gil_scoped_acquire gil;
  std::pair<int, std::string> r;
  try {
    r = (*g_backward_bridge)(capsule(call->q), capsule(call->k), capsule(call->v), capsule(call->out),
                             capsule(call->dout), capsule(call->dq), capsule(call->dk), capsule(call->dv),
                             call->heads, call->scale,
                             attncheck::ref::name_of(static_cast<attncheck::Axes>(call->axes)))
            .cast<std::pair<int, std::string>>();
  } catch (py::error_already_set& e) {
    throw ImplementationError(std::string("attncheck's Python bridge failed: ") + e.what());
  } catch (const py::cast_error& e) {
    throw ImplementationError(std::string("attncheck's Python bridge failed: ") + e.what());
  }
  if (r.first == -2) {
    g_interrupted = true;
    return ATTNCHECK_UNSUPPORTED;
  }
  if (r.first < 0) throw ImplementationError(r.second);
  if (size > 0) {
    const size_t n = std::min(r.second.size(), size - 1);
    std::memcpy(message, r.second.data(), n);
    message[n] = '\0';
  }
  return static_cast<attncheck_status>(r.first);
}

// Around each forked call: the interpreter's own fork protocol (as
// os.fork does it), and what Python buffered flushed first (or the child
// would write it into its captured output).
void flush_python_streams() {
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* f = PySys_GetObject(name);  // borrowed
    if (f && f != Py_None) {
      PyObject* r = PyObject_CallMethod(f, "flush", nullptr);
      if (r) Py_DECREF(r);
      else PyErr_Clear();
    }
  }
}

void before_fork() {
  // A pending Ctrl-C would raise inside the interpreter's own fork handlers
  // (logging's lock, taken before and released after): take it now, and
  // stop verify at the next property run.
  if (PyErr_CheckSignals() != 0) {
    PyErr_Clear();
    g_interrupted = true;
  }
  flush_python_streams();
  PyOS_BeforeFork();
}

void after_fork_parent() { PyOS_AfterFork_Parent(); }

// The child's Python side: attncheck._bridge.after_fork_child (torch on
// one thread, sys.stdout and sys.stderr on the descriptors the runner
// captures).
void after_fork_child() {
  PyOS_AfterFork_Child();
  PyObject* bridge = PyImport_ImportModule("attncheck._bridge");
  PyObject* r = bridge ? PyObject_CallMethod(bridge, "after_fork_child", nullptr) : nullptr;
  if (!r) PyErr_Print();
  Py_XDECREF(r);
  Py_XDECREF(bridge);
}

py::dict run_dict(const attncheck::VerifyRun& r) {
  const auto& o = r.outcome;
  py::dict d;
  d["impl"] = r.impl;
  d["property"] = attncheck::name_of(o.property);
  d["axes"] = attncheck::ref::name_of(o.axes);
  d["dtype"] = attncheck::ref::name_of(o.dtype);
  d["checked"] = o.checked;
  d["declined"] = o.declined;
  d["vacuous"] = o.vacuous;
  d["contract"] = attncheck::name_of(o.contract);
  d["failed"] = o.failure.has_value();
  d["result"] = attncheck::run_result(o);
  d["error"] = o.error;
  d["not_verified"] = o.failure ? std::string() : o.not_verified();
  d["decline_reasons"] = o.decline_reasons;
  d["seconds"] = o.seconds;
  if (o.failure) {
    d["case"] = o.failure->c.to_text();
    d["summary"] = o.failure->v.summary;
    d["diagnosis"] = o.failure->v.diagnosis;
    d["replay"] = r.replay;
    std::ostringstream text;
    attncheck::print_failure(text, o, r.replay);
    d["failure_text"] = text.str();
  }
  return d;
}

// verify(bridge, name, source, replay_command, args, array, backward_bridge) ->
// (exit status, report text, error text, runs). backward_bridge None: the
// function has no backward (NumPy arrays have no autograd).
py::tuple verify(py::object bridge, const std::string& name, const std::string& source,
                 const std::string& replay_command, const std::vector<std::string>& args,
                 const std::string& array, py::object backward_bridge) {
  if (!attncheck::valid_impl_name(name.c_str()))
    throw py::value_error("implementation name '" + name + "' is not [a-z0-9_.-]+");
  if (array != "torch" && array != "numpy") throw py::value_error("array must be 'torch' or 'numpy', not '" + array + "'");
  if (g_bridge) throw std::runtime_error("attncheck.verify is already running (it cannot be nested)");
  attncheck::VerifyOptions opt;
  bool help = false;
  const std::string error = attncheck::parse_verify_args(args, opt, &help);
  if (!error.empty()) throw py::value_error(error);
  if (help) throw py::value_error("--help is not an option here");
  if (!opt.target.empty()) throw py::value_error("unexpected argument '" + opt.target + "'");
  if (opt.case_text) try {
      (void)attncheck::Case::parse(*opt.case_text);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(std::string("--case: ") + e.what());
    }
  static std::string impl_name;  // the ABI's name pointer must outlive the verify
  impl_name = name;
  opt.given = {attncheck_impl{impl_name.c_str(), kDLCPU, py_attention}};
  if (!backward_bridge.is_none()) opt.given_backward = {attncheck_backward_impl{impl_name.c_str(), kDLCPU, py_backward}};
  opt.target = source;
  opt.replay_command = replay_command;
  opt.progress = false;
  // Ctrl-C: Python's handler only sets a flag; run it between property
  // runs, and let its KeyboardInterrupt out once verify has stopped.
  g_interrupted = false;
  opt.interrupted = [] { return g_interrupted || PyErr_CheckSignals() != 0; };
  std::ostringstream out, err;
  std::vector<attncheck::VerifyRun> runs;
  g_bridge = &bridge;
  g_backward_bridge = &backward_bridge;
  g_array = array;
  attncheck::set_fork_hooks({before_fork, after_fork_parent, after_fork_child});
  int status;
  try {
    status = attncheck::run_verify(opt, out, err, &runs);
  } catch (...) {
    g_bridge = g_backward_bridge = nullptr;
    attncheck::set_fork_hooks({});
    throw;
  }
  g_bridge = g_backward_bridge = nullptr;
  attncheck::set_fork_hooks({});
  if (PyErr_Occurred()) throw py::error_already_set();
  if (g_interrupted) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
  py::list rl;
  for (const auto& r : runs) rl.append(run_dict(r));
  return py::make_tuple(status, out.str(), err.str(), rl);
}

// The call in progress, as the DLTensors the checker made (for tests that
// prove the arrays are that memory): {role: {data, byte_offset, shape,
// strides, bits}}, or None outside a call.
py::object current_call() {
  if (!g_current) return py::none();
  py::dict d;
  const char* roles[4] = {"q", "k", "v", "out"};
  for (int role = 0; role < 4; ++role) {
    const DLTensor* t = role_tensor(g_current, role);
    int64_t s[5];
    strides_of(*t, s);
    py::dict x;
    x["data"] = reinterpret_cast<uintptr_t>(t->data);
    x["byte_offset"] = t->byte_offset;
    x["shape"] = std::vector<int64_t>(t->shape, t->shape + t->ndim);
    x["strides"] = std::vector<int64_t>(s, s + t->ndim);
    x["bits"] = static_cast<int>(t->dtype.bits);
    d[roles[role]] = x;
  }
  return d;
}

// (axes, dtype) of a case's text; ValueError naming what does not parse.
py::tuple case_axes_dtype(const std::string& text) {
  try {
    const attncheck::Case c = attncheck::Case::parse(text);
    return py::make_tuple(attncheck::ref::name_of(c.axes), attncheck::ref::name_of(c.dtype));
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string("--attncheck-case: ") + e.what());  // (only the pytest plugin asks)
  }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "attncheck's C++ checker (use the attncheck package, not this module)";
  m.def("verify", &verify, py::arg("bridge"), py::arg("name"), py::arg("source"), py::arg("replay_command"),
        py::arg("args"), py::arg("array"), py::arg("backward_bridge") = py::none());
  m.def("current_call", &current_call);
  m.def("case_axes_dtype", &case_axes_dtype);
  m.def("set_fold_offsets", [](bool fold) { g_fold_offsets = fold; });
  m.def("exit_word", &attncheck::exit_word);
  m.attr("verify_options_help") = attncheck::kVerifyOptionsHelp;
  m.attr("EXIT_PASSED") = static_cast<int>(attncheck::kExitPassed);
  m.attr("EXIT_FAILED") = static_cast<int>(attncheck::kExitFailed);
  m.attr("EXIT_ERROR") = static_cast<int>(attncheck::kExitError);
  m.attr("EXIT_NOT_VERIFIED") = static_cast<int>(attncheck::kExitNotVerified);
}
