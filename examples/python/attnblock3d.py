"""Open-Sora-Plan's AttnBlock3D attention, as that project writes it.

opensora/models/ae/videobase/modules/attention.py has two blocks:
AttnBlock3D ("compatible with old versions, there are issues, use with
caution") reshapes q, k, v from (b, c, t, h, w) to (b*t, c, h*w) without
first moving t next to b, so each "frame" it attends over mixes channels and
frames; AttnBlock3DFix permutes first. Their attention lines are copied
below as written there (the 1x1 convolutions, the norm and the residual
around them are left out: attncheck checks the attention).

What is added, so that attncheck can check every family and head count:
the model attends over (h, w) with one head and scale c ** -0.5; here heads
split the channels head-major, `scale` is the caller's, and the same lines
with the attended axes moved give temporal (over t) and spatiotemporal
(over t, h, w) attention. k and v use their own sizes (in the model they
come from the same x).

    python3 -m attncheck verify examples/python/attnblock3d.py:unfixed   # exit 1, names the permute
    python3 -m attncheck verify examples/python/attnblock3d.py:fixed     # exit 0
"""

import torch


def _attend(q, k, v, heads, scale):
    """The model's core on (N, C, S) tensors: N groups, S positions.
    Heads split the channels (N*heads, C/heads, S), as the model's one head
    is all of them."""
    n, c, s = q.shape
    q = q.reshape(n * heads, c // heads, s)
    k = k.reshape(n * heads, c // heads, k.shape[-1])
    v = v.reshape(n * heads, v.shape[1] // heads, v.shape[-1])
    # --- AttnBlock3D.forward (and AttnBlock3DFix.forward), as written:
    q = q.permute(0, 2, 1)  # b,hw,c
    w_ = torch.bmm(q, k)  # b,hw,hw    w[b,i,j]=sum_c q[b,i,c]k[b,c,j]
    w_ = w_ * scale  # the model: w_ * (int(c) ** (-0.5))
    w_ = torch.nn.functional.softmax(w_, dim=2)
    # attend to values
    w_ = w_.permute(0, 2, 1)  # b,hw,hw (first hw of k, second of q)
    h_ = torch.bmm(v, w_)  # b, c,hw (hw of q) h_[b,c,j] = sum_i v[b,c,i] w_[b,i,j]
    # ---
    return h_.reshape(n, -1, s)


def unfixed(q, k, v, *, heads, scale, axes):
    """AttnBlock3D: q.reshape(b * t, c, h * w) with no permute."""
    b, c, t, h, w = q.shape
    if axes == "spatial":
        # compute attention
        q_ = q.reshape(b * t, c, h * w)
        k_ = k.reshape(b * t, c, k.shape[3] * k.shape[4])
        v_ = v.reshape(b * t, v.shape[1], k.shape[3] * k.shape[4])
        h_ = _attend(q_, k_, v_, heads, scale)
        return h_.reshape(b, -1, t, h, w)
    if axes == "temporal":
        # The same mistake along t: (b, c, t, h, w) read as (b*h*w, c, t).
        q_ = q.reshape(b * h * w, c, t)
        k_ = k.reshape(b * h * w, c, k.shape[2])
        v_ = v.reshape(b * h * w, v.shape[1], k.shape[2])
        h_ = _attend(q_, k_, v_, heads, scale)
        return h_.reshape(b, -1, t, h, w)
    h_ = _attend(q.reshape(b, c, t * h * w), k.reshape(b, c, -1), v.reshape(b, v.shape[1], -1), heads, scale)
    return h_.reshape(b, -1, t, h, w)


def fixed(q, k, v, *, heads, scale, axes):
    """AttnBlock3DFix: permute t next to b, then reshape; undo both after."""
    b, c, t, h, w = q.shape
    cv = v.shape[1]
    if axes == "spatial":
        # q: (b c t h w) -> (b t c h w) -> (b*t c h*w)
        q_ = q.permute(0, 2, 1, 3, 4).reshape(b * t, c, h * w)
        # k: (b c t h w) -> (b t c h w) -> (b*t c h*w)
        k_ = k.permute(0, 2, 1, 3, 4).reshape(b * t, c, -1)
        # v: (b c t h w) -> (b t c h w) -> (bt c hw)
        v_ = v.permute(0, 2, 1, 3, 4).reshape(b * t, cv, -1)
        h_ = _attend(q_, k_, v_, heads, scale)
        # h_: (b*t c hw) -> (b t c h w) -> (b c t h w)
        h_ = h_.reshape(b, t, cv, h, w)
        return h_.permute(0, 2, 1, 3, 4)
    if axes == "temporal":
        # (b c t h w) -> (b h w c t) -> (b*h*w c t)
        q_ = q.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t)
        k_ = k.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, -1)
        v_ = v.permute(0, 3, 4, 1, 2).reshape(b * h * w, cv, -1)
        h_ = _attend(q_, k_, v_, heads, scale)
        return h_.reshape(b, h, w, cv, t).permute(0, 3, 4, 1, 2)
    h_ = _attend(q.reshape(b, c, t * h * w), k.reshape(b, c, -1), v.reshape(b, cv, -1), heads, scale)
    return h_.reshape(b, cv, t, h, w)
