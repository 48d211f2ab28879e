"""The call convention: how a Python function becomes an implementation the
C++ checker calls (the report it returns: _report.py).

The function receives torch tensors (or NumPy arrays) that *are* the case's
guarded memory: no copy, the case's exact strides and storage offset
(folded into the data pointer, never passed as DLPack's byte_offset), q, k
and v read-only in memory. It returns out, or writes into ``out`` when it
takes an argument of that name.
"""

import inspect
import os
import shlex
import sys
import traceback

from . import _core
from ._report import ERROR, FAILED, NOT_VERIFIED, PASSED, Report, Run  # noqa: F401 (the package's names)


class Unsupported(Exception):
    """Raised by an implementation to decline a call (a dtype, axes family,
    layout or size it does not serve): not a failure, and the reason is
    counted in the report. A run in which every call is declined verifies
    nothing (NOT VERIFIED, exit status 3)."""


def _takes_out(fn):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("out")
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


_HERE = os.path.abspath(__file__)


def _describe_exception(e):
    """One line: 'raised ValueError: msg (at f.py:12 in fn: code; ...)', the
    innermost frames of the user's code last."""
    text = "raised " + type(e).__name__
    msg = str(e)
    if isinstance(e, SystemExit):
        text += "(%r) (sys.exit during the call)" % (e.code,)
    elif msg:
        text += ": " + msg.strip().splitlines()[0][:300]
    frames = [f for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) != _HERE]
    if frames:
        parts = []
        for f in frames[-3:]:
            where = "%s:%d in %s" % (os.path.basename(f.filename), f.lineno, f.name)
            parts.append(where + (": " + f.line.strip() if f.line else ""))
        text += " (traceback ends: " + " <- ".join(reversed(parts)) + ")"
    return text


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


_in_child = False


def after_fork_child():
    """First thing in the forked child of each call (before the runner
    points descriptors 1 and 2 at the call's captured output).

    torch runs on one intra-op thread: its OpenMP pool does not survive a
    fork, and a child whose first parallel region finds the parent's pool
    hangs (GNU libgomp; measured with torch 1.13 after the parent ran ops on
    2 threads). sys.stdout and sys.stderr write to descriptors 1 and 2: a
    host's replacements (pytest's capture) would take the call's output
    away from the report.
    """
    global _in_child
    _in_child = True
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    import io
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  write_through=True)
        setattr(sys, name, stream)


def _shape(x):
    return "(" + ", ".join(str(int(n)) for n in x.shape) + ")"


class _Torch:
    def __init__(self):
        try:
            import torch
            from torch.utils.dlpack import from_dlpack
        except ImportError as e:
            raise ImportError("attncheck: array='torch' needs torch (apt-get install python3-torch): %s" % e)
        self.torch = torch
        self.from_dlpack = from_dlpack

    def arrays(self, q, k, v, out):
        return tuple(self.from_dlpack(c) for c in (q, k, v, out))

    def problem(self, result, out):
        torch = self.torch
        if not isinstance(result, torch.Tensor):
            return "returned %s, not a torch.Tensor (the output, shape %s)" % (type(result).__name__, _shape(out))
        if result.device != out.device:
            return "returned a tensor on %s; out is on %s" % (result.device, out.device)
        if result.dtype != out.dtype:
            return "returned dtype %s; out is %s" % (str(result.dtype).replace("torch.", ""),
                                                     str(out.dtype).replace("torch.", ""))
        if tuple(result.shape) != tuple(out.shape):
            return "returned shape %s; out is %s (B, Cv, T, H, W)" % (_shape(result), _shape(out))
        return None

    def store(self, result, out):
        if result.data_ptr() == out.data_ptr() and result.stride() == out.stride():
            return
        with self.torch.no_grad():
            out.copy_(result)


class _NumPy:
    def __init__(self):
        try:
            import numpy
        except ImportError as e:
            raise ImportError("attncheck: array='numpy' needs NumPy (apt-get install python3-numpy): %s" % e)
        self.np = numpy

    def arrays(self, q, k, v, out):
        if out is None:
            raise Unsupported("NumPy has no bfloat16")
        return q, k, v, out

    def problem(self, result, out):
        np = self.np
        if not isinstance(result, np.ndarray):
            return "returned %s, not a numpy.ndarray (the output, shape %s)" % (type(result).__name__, _shape(out))
        if result.dtype != out.dtype:
            return "returned dtype %s; out is %s" % (result.dtype, out.dtype)
        if result.shape != out.shape:
            return "returned shape %s; out is %s (B, Cv, T, H, W)" % (_shape(result), _shape(out))
        return None

    def store(self, result, out):
        if result.__array_interface__["data"][0] == out.__array_interface__["data"][0] and \
                result.strides == out.strides:
            return
        self.np.copyto(out, result)


def _arrays(kind):
    return _Torch() if kind == "torch" else _NumPy()


def choose_array(array):
    """'torch' or 'numpy' for array='auto' (or None): torch tensors when torch
    is imported (as it is by any module that uses it), NumPy arrays when it
    is not."""
    if array in (None, "auto"):
        return "torch" if sys.modules.get("torch") is not None else "numpy"
    if array not in ("torch", "numpy"):
        raise ValueError("array must be 'torch', 'numpy' or 'auto', not %r" % (array,))
    return array


def make_bridge(fn, array):
    """The callable the C++ implementation calls: (q, k, v, out, heads, scale,
    axes) -> (status, message); status -1 is a finding in message."""
    arrays = _arrays(array)
    takes_out = _takes_out(fn)

    def bridge(q, k, v, out, heads, scale, axes):
        try:
            q, k, v, out = arrays.arrays(q, k, v, out)
            kwargs = {"heads": heads, "scale": scale, "axes": axes}
            if takes_out:
                kwargs["out"] = out
            result = fn(q, k, v, **kwargs)
            if result is None:
                if takes_out:
                    return 0, ""
                return -1, ("returned None: return the output (shape %s), or take an `out` argument "
                            "and write it" % _shape(out))
            problem = arrays.problem(result, out)
            if problem:
                return -1, problem
            arrays.store(result, out)
            return 0, ""
        except Unsupported as e:
            return 1, str(e) or "declined (attncheck.Unsupported)"
        except KeyboardInterrupt as e:
            if not _in_child:  # Ctrl-C during an in-process call: stop verify
                return -2, ""
            traceback.print_exc()
            return -1, _describe_exception(e)
        except BaseException as e:  # noqa: B902 -- SystemExit and KeyboardInterrupt are findings too
            traceback.print_exc()
            return -1, _describe_exception(e)
        finally:
            _flush()

    return bridge


def make_backward_bridge(fn, array):
    """The backward the C++ implementation calls: (q, k, v, out, dout, dq, dk,
    dv, heads, scale, axes) -> (status, message), through torch's autograd:
    q, k and v copied into leaves (a broadcast or shared input gets its full
    logical gradient, as the spec asks), fn called again, its output's
    backward(dout), the leaves' gradients written into dq, dk and dv. None
    for NumPy arrays: they have no autograd."""
    if array != "torch":
        return None
    arrays = _Torch()
    torch = arrays.torch
    takes_out = _takes_out(fn)

    def backward(q, k, v, out, dout, dq, dk, dv, heads, scale, axes):
        try:
            q, k, v, out, dout, dq, dk, dv = (arrays.from_dlpack(c) for c in (q, k, v, out, dout, dq, dk, dv))
            leaves = [x.detach().clone().requires_grad_(True) for x in (q, k, v)]
            kwargs = {"heads": heads, "scale": scale, "axes": axes}
            with torch.enable_grad():
                if takes_out:
                    kwargs["out"] = torch.empty(tuple(out.shape), dtype=out.dtype)
                result = fn(*leaves, **kwargs)
                if result is None and takes_out:
                    result = kwargs["out"]
                if result is None:
                    return -1, ("returned None: return the output (shape %s), or take an `out` argument "
                                "and write it" % _shape(out))
                problem = arrays.problem(result, out)
                if problem:
                    return -1, problem
                if not result.requires_grad:
                    return -1, ("its output does not depend on q, k or v through torch's autograd (computed "
                                "under torch.no_grad(), detached, or outside torch): no gradient to check")
                result.backward(dout)
            with torch.no_grad():
                for leaf, grad in zip(leaves, (dq, dk, dv)):
                    if leaf.grad is None:  # the output does not depend on it: its gradient is 0
                        grad.zero_()
                    else:
                        grad.copy_(leaf.grad)
            return 0, ""
        except Unsupported as e:
            return 1, str(e) or "declined (attncheck.Unsupported)"
        except KeyboardInterrupt as e:
            if not _in_child:
                return -2, ""
            traceback.print_exc()
            return -1, _describe_exception(e)
        except BaseException as e:  # noqa: B902
            traceback.print_exc()
            return -1, _describe_exception(e)
        finally:
            _flush()

    return backward


def impl_name(fn):
    """A name of the ABI's alphabet ([a-z0-9_.-]+) for fn."""
    raw = getattr(fn, "__name__", None) or type(fn).__name__
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in raw.lower())
    name = "".join(c for c in name if c.isascii())
    return name or "fn"


def target_of(fn):
    """MODULE:FUNCTION (or FILE.py:FUNCTION) that loads fn again, for replay
    lines; None when fn cannot be named (a lambda, a closure)."""
    qual = getattr(fn, "__qualname__", None)
    mod = getattr(fn, "__module__", None)
    if not qual or "<" in qual:
        return None
    if mod and mod != "__main__":
        return "%s:%s" % (mod, qual)
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        return None
    return "%s:%s" % (os.path.relpath(path), qual) if path else None


def _options(axes, dtypes, properties, cases, seed, precision, strict, no_declines, fork, case, timeout,
             memory_limit, json, junit, brief, passes=None):
    """verify()'s keywords as the command line's options (one parser, in C++)."""
    def words(x):
        return [x] if isinstance(x, str) else list(x)

    args = []
    if axes is not None:
        args += ["--axes", ",".join(words(axes))]
    if dtypes is not None:
        args += ["--dtype", ",".join(words(dtypes))]
    if properties is not None:
        args += ["--property", ",".join(words(properties))]
    if passes is not None:
        args += ["--pass", ",".join(words(passes))]
    for flag, value in (("--cases", cases), ("--seed", seed), ("--precision", precision), ("--case", case),
                        ("--timeout", timeout), ("--memory-limit", memory_limit), ("--json", json),
                        ("--junit", junit)):
        if value is not None:
            args += [flag, str(value)]
    for flag, on in (("--strict", strict), ("--no-declines", no_declines), ("--no-fork", not fork),
                     ("--brief", brief)):
        if on:
            args.append(flag)
    return args


def run(fn, args, *, source=None, replay=None, array=None, name=None):
    """verify with the command line's options (a list of words)."""
    if not callable(fn):
        raise TypeError("attncheck.verify: %r is not callable" % (fn,))
    array = choose_array(array)
    name = name or impl_name(fn)
    target = target_of(fn)
    if source is None:
        source = target or "python function %s" % name
    if replay is None:
        if target:
            replay = "python3 -m attncheck verify %s" % shlex.quote(target)
            if array != "torch":
                replay += " --array " + array
        else:  # a lambda, a closure, a callable object: the call that replays it
            replay = "attncheck.verify(%s, case={case})" % name
    bridge = make_bridge(fn, array)
    # The backward (fn's autograd gradients) only when a pass asks for it:
    # each backward case costs a forward and a backward call in a forked
    # child, which would double every run's time by default.
    args = [str(a) for a in args]
    wants_backward = any(a == "--pass" and "backward" in b.split(",") for a, b in zip(args, args[1:]))
    backward = make_backward_bridge(fn, array) if wants_backward else None
    status, text, errors, runs = _core.verify(bridge, name, source, replay, args, array, backward)
    return Report(status, text, errors, runs)


def verify(fn, *, axes=None, dtypes=None, properties=None, cases=None, seed=None, precision=None, strict=False,
           no_declines=False, fork=True, case=None, timeout=None, memory_limit=None, json=None, junit=None,
           brief=False, array=None, name=None, passes=None):
    """Verifies ``fn(q, k, v, *, heads, scale, axes) -> out`` on every property
    (or ``properties``), axes family (``axes``) and dtype (``dtypes``, default
    f32) over ``cases`` generated cases each; returns a Report.

    The options are the command line's (``attncheck verify --help``): lists
    as Python lists or comma-separated strings; ``fork=False`` calls in this
    process (a crash then ends the interpreter); ``case`` replays one case
    (the text of a failure's replay line). ``array``: 'torch', 'numpy' or
    'auto' (torch when torch is imported). ``passes``: 'forward' (the
    default), 'backward' or both: the backward checks fn's gradients through
    torch's autograd (torch arrays only; NumPy has no autograd). A bad option
    raises ValueError with the command line's one-line message.
    """
    args = _options(axes, dtypes, properties, cases, seed, precision, strict, no_declines, fork, case, timeout,
                    memory_limit, json, junit, brief, passes)
    return run(fn, args, array=array, name=name)
