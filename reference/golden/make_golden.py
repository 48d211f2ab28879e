#!/usr/bin/python3
"""Golden attention values computed by NumPy, independently of attncheck.

Regenerate with:  /usr/bin/python3 reference/golden/make_golden.py > reference/golden/attention.golden
(Debian's python3-numpy). Each case is written as text: its sizes, the float32
inputs q, k, v (packed, (B, C, T, H, W)), and the float64 outputs of the
spec's attention and of the legacy reshape-without-permute semantics.
"""
import numpy as np

CASES = [
    # axes, B, C, Cv, heads, (Tq, Hq, Wq), (Tk, Hk, Wk), scale
    ("spatial", 1, 4, 4, 1, (2, 3, 2), (2, 3, 2), 0.5),
    ("spatial", 2, 6, 4, 2, (3, 2, 2), (3, 1, 3), None),
    ("spatial", 1, 2, 3, 1, (1, 2, 3), (1, 3, 1), -1.25),
    ("temporal", 1, 4, 2, 2, (3, 2, 2), (4, 2, 2), None),
    ("temporal", 2, 3, 3, 3, (2, 1, 3), (2, 1, 3), 2.0),
    ("spatiotemporal", 1, 4, 6, 2, (2, 2, 1), (3, 1, 2), None),
    ("spatiotemporal", 2, 2, 2, 1, (1, 3, 3), (2, 2, 2), 0.75),
]


def to_groups(x, axes, heads, legacy):
    B, C, T, H, W = x.shape
    if axes == "spatial":
        g = (x if legacy else x.transpose(0, 2, 1, 3, 4)).reshape(B * T, C, H * W)
    elif axes == "temporal":
        g = (x if legacy else x.transpose(0, 3, 4, 1, 2)).reshape(B * H * W, C, T)
    else:
        g = x.reshape(B, C, T * H * W)
    n, c, s = g.shape
    return g.reshape(n, heads, c // heads, s)


def from_groups(o, axes, qshape, cv, legacy):
    B, _, T, H, W = qshape
    g = o.reshape(o.shape[0], cv, o.shape[3])
    if axes == "spatial" and not legacy:
        return g.reshape(B, T, cv, H, W).transpose(0, 2, 1, 3, 4)
    if axes == "temporal" and not legacy:
        return g.reshape(B, H, W, cv, T).transpose(0, 3, 4, 1, 2)
    return g.reshape(B, cv, T, H, W)


def attention(q, k, v, axes, heads, scale, legacy=False):
    q64, k64, v64 = (t.astype(np.float64) for t in (q, k, v))
    qg, kg, vg = (to_groups(t, axes, heads, legacy) for t in (q64, k64, v64))
    logits = scale * np.einsum("ngdp,ngdr->ngpr", qg, kg)
    logits -= logits.max(axis=3, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=3, keepdims=True)
    o = np.einsum("ngpr,ngdr->ngdp", p, vg)
    return from_groups(o, axes, q.shape, v.shape[1], legacy)


def main():
    rng = np.random.default_rng(20261128)
    print("# attncheck golden attention values; made by reference/golden/make_golden.py")
    for axes, B, C, Cv, heads, (Tq, Hq, Wq), (Tk, Hk, Wk), scale in CASES:
        if scale is None:
            scale = 1.0 / np.sqrt(C // heads)
        q = rng.standard_normal((B, C, Tq, Hq, Wq)).astype(np.float32)
        k = rng.standard_normal((B, C, Tk, Hk, Wk)).astype(np.float32)
        v = rng.standard_normal((B, Cv, Tk, Hk, Wk)).astype(np.float32)
        print(f"case {axes} {B} {C} {Cv} {heads} {Tq} {Hq} {Wq} {Tk} {Hk} {Wk} {scale!r}")
        for name, t in (("q", q), ("k", k), ("v", v)):
            print(name, " ".join(f"{x:.9g}" for x in t.ravel()))
        print("out", " ".join(f"{x:.17g}" for x in attention(q, k, v, axes, heads, scale).ravel()))
        if axes != "spatiotemporal" and (Tq, Hq, Wq) == (Tk, Hk, Wk):
            legacy = attention(q, k, v, axes, heads, scale, legacy=True)
            print("legacy", " ".join(f"{x:.17g}" for x in legacy.ravel()))


if __name__ == "__main__":
    main()
