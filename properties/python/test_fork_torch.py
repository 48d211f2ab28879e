"""Forked calls from a process that has run torch on 2 intra-op threads.

libtorch's OpenMP pool does not survive a fork: without attncheck's child
hook, the first parallel op in the child waits forever for the parent's
threads. Here the parent runs ops large enough to start the pool, then
verify forks per call; every call must return well within its time limit.
"""

import time

import torch

import attncheck
import hostile


def test_verify_after_torch_ran_on_two_threads():
    torch.set_num_threads(2)
    x = torch.randn(512, 512)
    for _ in range(3):
        (x @ x).softmax(-1).sum()

    def big_ops(q, k, v, *, heads, scale, axes):
        y = torch.randn(256, 256)
        (y @ y).exp().sum()  # a parallel region in the child
        return hostile.correct(q, k, v, heads=heads, scale=scale, axes=axes)

    start = time.monotonic()
    r = attncheck.verify(big_ops, axes=["spatial"], properties=["semantics", "memory"], cases=10, timeout=5)
    assert r.exit_status == attncheck.PASSED, r.text
    assert time.monotonic() - start < 30
    assert torch.get_num_threads() == 2  # the parent's setting is its own
