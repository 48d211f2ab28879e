"""attncheck.verify(passes=...): a function's autograd gradients checked like a backward plugin's."""

import os
import sys

import torch

import attncheck

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
import attnblock3d  # noqa: E402

FEW = dict(cases=5, seed=1)


def test_the_fixed_block_gradients_pass():
    r = attncheck.verify(attnblock3d.fixed, passes=["backward"], **FEW)
    assert r.exit_status == attncheck.PASSED, r.text
    assert "backward.semantics" in r.text and "backward.memory" in r.text
    assert all(run.property.startswith("backward.") for run in r.runs)


def test_the_unfixed_block_gradients_are_caught_and_named():
    r = attncheck.verify(attnblock3d.unfixed, passes=["backward"], properties=["backward.semantics"],
                         axes=["spatial"], **FEW)
    assert r.exit_status == attncheck.FAILED, r.text
    assert "gradients equal those of spatial attention computed with reshape(B*T, C, H*W) without the " \
           "permute" in r.text, r.text


def no_grad(q, k, v, *, heads, scale, axes):
    with torch.no_grad():
        return attnblock3d.fixed(q, k, v, heads=heads, scale=scale, axes=axes)


def test_an_output_outside_autograd_is_a_finding():
    r = attncheck.verify(no_grad, passes=["backward"], properties=["backward.semantics"], axes=["spatial"], **FEW)
    assert r.exit_status == attncheck.FAILED, r.text
    assert "does not depend on q, k or v through torch's autograd" in r.text, r.text


def test_numpy_arrays_have_no_backward():
    r = attncheck.verify(attnblock3d.fixed, passes=["backward"], properties=["backward.semantics"],
                         axes=["spatial"], array="numpy", **FEW)
    assert r.exit_status == attncheck.NOT_VERIFIED, r.text
    assert "has no backward" in r.text, r.text


def test_forward_only_by_default():
    r = attncheck.verify(attnblock3d.fixed, properties=["semantics"], axes=["spatial"], **FEW)
    assert r.exit_status == attncheck.PASSED, r.text
    assert not any(run.property.startswith("backward.") for run in r.runs)
