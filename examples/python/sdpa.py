"""Scaled dot-product attention from PyTorch over (B, C, T, H, W) tensors:
the heads split as PyTorch models split them ((N, heads, S, D)), then
F.scaled_dot_product_attention where torch >= 2.0 has it, and libtorch
1.13's private torch.nn.functional._scaled_dot_product_attention otherwise
(Debian 12's python3-torch). The private one takes no scale (it divides by
sqrt(D) itself), so the wanted scale is folded into q.

    python3 -m attncheck verify examples/python/sdpa.py:sdpa    # exit 0
"""

import math

import torch
import torch.nn.functional as F


def _sequences(x, axes, heads):
    """(B, C, T, H, W) -> (N, heads, S, C/heads) for the attended axes."""
    b, c, t, h, w = x.shape
    if axes == "spatial":
        x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
    elif axes == "temporal":
        x = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
    else:
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t * h * w, c)
    return x.reshape(x.shape[0], x.shape[1], heads, c // heads).transpose(1, 2)


def _sdpa(q, k, v, scale):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    return F._scaled_dot_product_attention(q * (scale * math.sqrt(q.shape[-1])), k, v)[0]


def sdpa(q, k, v, *, heads, scale, axes):
    b, _, t, h, w = q.shape
    cv = v.shape[1]
    o = _sdpa(_sequences(q, axes, heads), _sequences(k, axes, heads), _sequences(v, axes, heads), scale)
    o = o.transpose(1, 2).reshape(o.shape[0], o.shape[2], cv)  # (N, S, Cv)
    if axes == "spatial":
        return o.reshape(b, t, h, w, cv).permute(0, 4, 1, 2, 3)
    if axes == "temporal":
        return o.reshape(b, h, w, t, cv).permute(0, 4, 3, 1, 2)
    return o.reshape(b, t, h, w, cv).permute(0, 4, 1, 2, 3)
