"""Attention over (B, C, T, H, W) written with einsum on the 5-D tensors
themselves: no reshape, so no reshape can mix frames. Writes into `out`.
f16 and bf16 inputs are computed in f32 and rounded once at the end (the
`fused` precision contract, attncheck's default for 16-bit dtypes).

    python3 -m attncheck verify examples/python/einsum.py:attention   # exit 0
"""

import torch

# q, k: (b, g, d, t, h, w) with the channels split into heads g of size d.
_LOGITS = {"spatial": "bgdtij,bgdtkl->bgtijkl", "temporal": "bgdtij,bgdsij->bgijts",
           "spatiotemporal": "bgdtij,bgdskl->bgtijskl"}
_OUT = {"spatial": "bgtijkl,bgetkl->bgetij", "temporal": "bgijts,bgesij->bgetij",
        "spatiotemporal": "bgtijskl,bgeskl->bgetij"}
_KEY_DIMS = {"spatial": 2, "temporal": 1, "spatiotemporal": 3}  # trailing dims of the logits that are keys


def attention(q, k, v, *, heads, scale, axes, out):
    b, c, t, h, w = q.shape
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32

    def split(x):
        return x.to(acc).reshape(x.shape[0], heads, x.shape[1] // heads, *x.shape[2:])

    logits = torch.einsum(_LOGITS[axes], split(q), split(k)) * scale
    n = _KEY_DIMS[axes]
    flat = logits.reshape(*logits.shape[:logits.dim() - n], -1)
    p = torch.softmax(flat, dim=-1).reshape(logits.shape)
    o = torch.einsum(_OUT[axes], p, split(v))  # (b, g, e, t, h, w)
    out.copy_(o.reshape(b, -1, t, h, w))
