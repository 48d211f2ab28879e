"""Functions that misbehave, each in one way, for the Python package's tests."""

import ctypes
import os
import sys
import time

import attncheck

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))


def correct(q, k, v, *, heads, scale, axes):
    """examples/python/einsum.py, returning out (torch imported only here)."""
    import torch
    from einsum import attention as _correct
    out = torch.empty(q.shape[0], v.shape[1], *q.shape[2:], dtype=q.dtype)
    _correct(q, k, v, heads=heads, scale=scale, axes=axes, out=out)
    return out


def raises(q, k, v, *, heads, scale, axes):
    return helper_that_divides(q)


def helper_that_divides(q):
    return 1 / 0


def wrong_shape(q, k, v, *, heads, scale, axes):
    return correct(q, k, v, heads=heads, scale=scale, axes=axes)[:, :, :1].contiguous() if q.shape[2] > 1 else \
        correct(q, k, v, heads=heads, scale=scale, axes=axes).unsqueeze(0)


def wrong_dtype(q, k, v, *, heads, scale, axes):
    return correct(q, k, v, heads=heads, scale=scale, axes=axes).double()


def returns_none(q, k, v, *, heads, scale, axes):
    correct(q, k, v, heads=heads, scale=scale, axes=axes)


def returns_tuple(q, k, v, *, heads, scale, axes):
    return correct(q, k, v, heads=heads, scale=scale, axes=axes), None


def segfault(q, k, v, *, heads, scale, axes):
    ctypes.string_at(0x10)


def exits(q, k, v, *, heads, scale, axes):
    sys.exit(3)


def hard_exit(q, k, v, *, heads, scale, axes):
    os._exit(42)


def hangs(q, k, v, *, heads, scale, axes):
    while True:
        time.sleep(0.01)


def writes_q(q, k, v, *, heads, scale, axes):
    q.zero_()
    return correct(q, k, v, heads=heads, scale=scale, axes=axes)


def floods(q, k, v, *, heads, scale, axes):
    sys.stdout.write("x" * (5 << 20) + "\n")
    print("the flood's last line")
    return correct(q, k, v, heads=heads, scale=scale, axes=axes)


def floods_then_raises(q, k, v, *, heads, scale, axes):
    print("y" * (5 << 20))
    print("the last words before the raise")
    raise RuntimeError("kernel launch failed")


def declines(q, k, v, *, heads, scale, axes):
    raise attncheck.Unsupported("this kernel serves bfloat16 only")


def spatial_only(q, k, v, *, heads, scale, axes):
    if axes != "spatial":
        raise attncheck.Unsupported("spatial attention only")
    return correct(q, k, v, heads=heads, scale=scale, axes=axes)


def writes_out(q, k, v, *, heads, scale, axes, out):
    out.copy_(correct(q, k, v, heads=heads, scale=scale, axes=axes))


def forgets_out(q, k, v, *, heads, scale, axes, out):
    pass


def numpy_attention(q, k, v, *, heads, scale, axes):
    """Attention in NumPy (float32 and float64; float16 computed in float32)."""
    import numpy as np
    b, c, t, h, w = q.shape
    cv = v.shape[1]

    def seq(x):  # (b, c, t, h, w) -> (n, heads, s, d)
        bb, cc, tt, hh, ww = x.shape
        if axes == "spatial":
            x = x.transpose(0, 2, 3, 4, 1).reshape(bb * tt, hh * ww, cc)
        elif axes == "temporal":
            x = x.transpose(0, 3, 4, 2, 1).reshape(bb * hh * ww, tt, cc)
        else:
            x = x.transpose(0, 2, 3, 4, 1).reshape(bb, tt * hh * ww, cc)
        return x.reshape(x.shape[0], x.shape[1], heads, cc // heads).transpose(0, 2, 1, 3)

    acc = np.float64 if q.dtype == np.float64 else np.float32
    qs, ks, vs = (seq(x).astype(acc) for x in (q, k, v))
    logits = np.einsum("nhpd,nhrd->nhpr", qs, ks) * scale
    logits -= logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=-1, keepdims=True)
    o = np.einsum("nhpr,nhre->nhpe", p, vs).transpose(0, 2, 1, 3).reshape(qs.shape[0], -1, cv)
    if axes == "spatial":
        o = o.reshape(b, t, h, w, cv).transpose(0, 4, 1, 2, 3)
    elif axes == "temporal":
        o = o.reshape(b, h, w, t, cv).transpose(0, 4, 3, 1, 2)
    else:
        o = o.reshape(b, t, h, w, cv).transpose(0, 4, 1, 2, 3)
    return o.astype(q.dtype)


CALLS = []


def records(q, k, v, *, heads, scale, axes):
    """Records each call's tensors against the checker's DLTensors (fork=False)."""
    from attncheck import _core
    info = _core.current_call()
    CALLS.append({role: (t.data_ptr(), tuple(t.stride()), tuple(t.shape), info[role])
                  for role, t in (("q", q), ("k", k), ("v", v))})
    return correct(q, k, v, heads=heads, scale=scale, axes=axes)
