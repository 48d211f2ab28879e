#!/usr/bin/python3
"""Script the Open-Sora-Plan AttnBlock3D attention core, fixed and unfixed,
into TorchScript files that attncheck's libtorch adapter verifies:

    python3 make_attnblock3d.py OUTDIR
    ATTNCHECK_TORCHSCRIPT=OUTDIR/attnblock3d_fixed.pt \\
        attncheck verify <prefix>/lib/attncheck/torch.so --impl torchscript

A module attncheck can load has forward(q, k, v, heads, scale) -> out, with
q, k, v and out (B, C, T, H, W) tensors (any strides; do not write to the
inputs) and out (B, Cv, Tq, Hq, Wq). Such a forward serves spatial attention,
AttnBlock3D's; add a sixth argument `axes: str` ("spatial", "temporal",
"spatiotemporal") to be checked on all three families.

With --test-modules it also writes the broken modules the adapter's tests use
(all_axes.pt, wrong_shape.pt, raises.pt, wrong_arity.pt). Needs Debian's python3-torch.
"""
import os
import sys

import torch


class AttnBlock3DCore(torch.nn.Module):
    """The attention core of AttnBlock3D (Open-Sora-Plan, after the fix of
    #171 / #172): frames move next to the batch before the reshape."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                scale: float) -> torch.Tensor:
        b, c, t, h, w = q.shape
        cv = v.shape[1]
        hk, wk = k.shape[3], k.shape[4]
        q = q.permute(0, 2, 1, 3, 4).reshape(b * t * heads, c // heads, h * w)
        k = k.permute(0, 2, 1, 3, 4).reshape(b * t * heads, c // heads, hk * wk)
        v = v.permute(0, 2, 1, 3, 4).reshape(b * t * heads, cv // heads, hk * wk)
        w_ = torch.bmm(q.permute(0, 2, 1), k)  # b*t*heads, hw, hw (keys last)
        w_ = w_ * scale
        w_ = torch.nn.functional.softmax(w_, dim=2)
        h_ = torch.bmm(v, w_.permute(0, 2, 1))  # b*t*heads, cv/heads, hw
        return h_.reshape(b, t, cv, h, w).permute(0, 2, 1, 3, 4)


class AttnBlock3DCoreLegacy(torch.nn.Module):
    """The same core before the fix: (b, c, t, h, w).reshape(b*t, c, h*w)
    without the permute, which mixes frames and channels whenever t > 1."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                scale: float) -> torch.Tensor:
        b, c, t, h, w = q.shape
        cv = v.shape[1]
        hk, wk = k.shape[3], k.shape[4]
        q = q.reshape(b * t * heads, c // heads, h * w)
        k = k.reshape(b * t * heads, c // heads, hk * wk)
        v = v.reshape(b * t * heads, cv // heads, hk * wk)
        w_ = torch.bmm(q.permute(0, 2, 1), k)
        w_ = w_ * scale
        w_ = torch.nn.functional.softmax(w_, dim=2)
        h_ = torch.bmm(v, w_.permute(0, 2, 1))
        return h_.reshape(b, cv, t, h, w)


def _groups(x: torch.Tensor, heads: int, axes: str) -> torch.Tensor:
    """(b, c, t, h, w) -> (groups * heads, c / heads, positions)."""
    bb, c, t, h, w = x.shape
    if axes == "spatial":
        x = x.permute(0, 2, 1, 3, 4).reshape(bb * t, c, h * w)
    elif axes == "temporal":
        x = x.permute(0, 3, 4, 1, 2).reshape(bb * h * w, c, t)
    else:
        x = x.reshape(bb, c, t * h * w)
    return x.reshape(x.shape[0] * heads, c // heads, x.shape[2])


class AllAxes(torch.nn.Module):
    """The fixed core for every family: forward takes a sixth argument, axes."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                scale: float, axes: str) -> torch.Tensor:
        b, cv, tq, hq, wq = q.shape[0], v.shape[1], q.shape[2], q.shape[3], q.shape[4]
        qg, kg, vg = _groups(q, heads, axes), _groups(k, heads, axes), _groups(v, heads, axes)
        w_ = torch.softmax(torch.bmm(qg.permute(0, 2, 1), kg) * scale, dim=2)
        o = torch.bmm(vg, w_.permute(0, 2, 1))
        if axes == "spatial":
            return o.reshape(b, tq, cv, hq, wq).permute(0, 2, 1, 3, 4)
        if axes == "temporal":
            return o.reshape(b, hq, wq, cv, tq).permute(0, 3, 4, 1, 2)
        return o.reshape(b, cv, tq, hq, wq)


class WrongShape(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                scale: float) -> torch.Tensor:
        return q.flatten()


class WrongArity(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return q


class Raises(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                scale: float) -> torch.Tensor:
        if heads > 0:
            raise RuntimeError("this module always raises")
        return q


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = args[0]
    os.makedirs(out, exist_ok=True)
    modules = {"attnblock3d_fixed": AttnBlock3DCore(), "attnblock3d_legacy": AttnBlock3DCoreLegacy()}
    if "--test-modules" in argv:
        modules.update(all_axes=AllAxes(), wrong_shape=WrongShape(), raises=Raises(),
                       wrong_arity=WrongArity())
    for name, m in modules.items():
        path = os.path.join(out, name + ".pt")
        torch.jit.script(m).save(path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
