"""attncheck.verify: the call convention, every failure path, the report."""

import re

import pytest
import torch

import attncheck
import hostile
from attncheck import _core

ONE = dict(axes=["spatial"], properties=["semantics"], cases=5, seed=1)


def finding(report):
    """The first FAILED run's summary line."""
    assert report.exit_status == attncheck.FAILED, report.text
    return report.failures[0].summary


def test_correct_function_passes_every_property():
    r = attncheck.verify(hostile.correct, cases=8, seed=3)
    assert r.exit_status == attncheck.PASSED, r.text
    assert len(r.runs) == 24 and all(run.checked > 0 for run in r.runs)
    assert r.text.startswith("verifying correct from hostile:correct (seed 3, 8 cases")
    assert "PASSED: 24 property runs" in str(r)


def test_tensors_are_the_guarded_memory():
    """Zero copy: each tensor's data_ptr is the case's data + byte_offset,
    with the case's exact strides and shape; offsets and zero strides occur."""
    hostile.CALLS.clear()
    r = attncheck.verify(hostile.records, cases=40, seed=5, fork=False,
                         properties=["semantics", "layout_invariance", "memory"])
    assert r.exit_status == attncheck.PASSED, r.text
    assert len(hostile.CALLS) >= 3 * 40 * 3
    offsets = zero_strides = 0
    for call in hostile.CALLS:
        for role, (ptr, strides, shape, dl) in call.items():
            assert ptr == dl["data"] + dl["byte_offset"], (role, ptr, dl)
            assert list(strides) == dl["strides"] and list(shape) == dl["shape"], (role, strides, dl)
            offsets += dl["byte_offset"] > 0
            zero_strides += 0 in strides
    assert offsets > 50 and zero_strides > 5, (offsets, zero_strides)
    assert _core.current_call() is None


@pytest.mark.skipif(torch.__version__ >= "2.10", reason="this torch may honour byte_offset (pytorch#168177)")
def test_offsets_must_be_folded_for_this_torch():
    """libtorch before 2.x ignores DLPack's byte_offset: a bridge handing it
    over as it is fails on the offset layouts, which proves the fold."""
    try:
        _core.set_fold_offsets(False)
        r = attncheck.verify(hostile.correct, axes=["spatial"], properties=["semantics"], cases=30, seed=1)
    finally:
        _core.set_fold_offsets(True)
    assert r.exit_status == attncheck.FAILED, r.text
    # The minimal case: one tensor offset by one element, every other layout plain.
    layouts = sorted(re.findall(r" L(?:q|k|v|out)=(\S+)", r.failures[0].case))
    assert layouts == ["0/1/0:0:0:0:0/0/a/0/0"] * 3 + ["0/1/0:0:0:0:0/1/a/0/0"], r.failures[0].case
    assert attncheck.verify(hostile.correct, axes=["spatial"], properties=["semantics"], cases=30,
                            seed=1).exit_status == attncheck.PASSED


def test_out_argument():
    assert attncheck.verify(hostile.writes_out, **ONE).exit_status == attncheck.PASSED
    r = attncheck.verify(hostile.forgets_out, **ONE)
    assert "output elements differ from the reference" in finding(r)


def test_numpy_functions():
    r = attncheck.verify(hostile.numpy_attention, array="numpy", dtypes=["f32", "f64", "f16"], cases=10)
    assert r.exit_status == attncheck.PASSED, r.text
    r = attncheck.verify(hostile.numpy_attention, array="numpy", dtypes=["bf16"], **ONE)
    assert r.exit_status == attncheck.NOT_VERIFIED
    assert "every call declined: NumPy has no bfloat16" in r.text


def test_numpy_inputs_are_read_only():
    def writes(q, k, v, *, heads, scale, axes):
        q[...] = 0
        return hostile.numpy_attention(q, k, v, heads=heads, scale=scale, axes=axes)
    r = attncheck.verify(writes, array="numpy", **ONE)
    assert finding(r).startswith("raised ValueError: assignment destination is read-only")


def test_declines():
    r = attncheck.verify(hostile.declines, **ONE)
    assert r.exit_status == attncheck.NOT_VERIFIED
    assert r.runs[0].not_verified == "every call declined: this kernel serves bfloat16 only"
    r = attncheck.verify(hostile.spatial_only, properties=["semantics"], cases=5)
    assert r.exit_status == attncheck.NOT_VERIFIED
    assert [run.result for run in r.runs] == ["ok", "NOT VERIFIED", "NOT VERIFIED"]
    assert "to verify only what it serves: --axes spatial" in r.text
    assert attncheck.verify(hostile.declines, no_declines=True, **ONE).exit_status == attncheck.FAILED


@pytest.mark.parametrize("fork", [True, False])
def test_exception_is_a_failure_with_its_traceback(fork):
    r = attncheck.verify(hostile.raises, fork=fork, **ONE)
    s = finding(r)
    assert s.startswith("raised ZeroDivisionError: division by zero (traceback ends: hostile.py:")
    assert "in helper_that_divides: return 1 / 0 <- hostile.py:" in s
    if fork:  # the traceback's last lines, as the call printed them
        assert "| ZeroDivisionError: division by zero" in r.text


@pytest.mark.parametrize("fn, words", [
    (hostile.wrong_shape, "returned shape (1, 1, 1, 1, 1, 1); out is (1, 1, 1, 1, 1) (B, Cv, T, H, W)"),
    (hostile.wrong_dtype, "returned dtype float64; out is float32"),
    (hostile.returns_none, "returned None: return the output (shape (1, 1, 1, 1, 1)), or take an `out` argument"),
    (hostile.returns_tuple, "returned tuple, not a torch.Tensor"),
    (hostile.segfault, "segmentation fault at address 0x10"),
    (hostile.exits, "raised SystemExit(3) (sys.exit during the call)"),
    (hostile.hard_exit, "exited with status 42 during the call"),
    (hostile.writes_q, "fault: wrote to q"),
])
def test_misbehaviour_is_a_finding(fn, words):
    assert words in finding(attncheck.verify(fn, **ONE))


def test_wrong_device():
    if not hasattr(torch, "device"):
        pytest.skip("no torch.device")
    def meta(q, k, v, *, heads, scale, axes):
        return torch.empty(q.shape[0], v.shape[1], *q.shape[2:], dtype=q.dtype, device="meta")
    assert "returned a tensor on meta; out is on cpu" in finding(attncheck.verify(meta, **ONE))


def test_hang_is_a_finding():
    r = attncheck.verify(hostile.hangs, timeout=0.5, **ONE)
    assert finding(r).startswith("hang: no return within 0.5 s (killed)")


def test_flood_is_not_in_the_report():
    r = attncheck.verify(hostile.floods, **ONE)
    assert r.exit_status == attncheck.PASSED and "xxxx" not in r.text
    r = attncheck.verify(hostile.floods_then_raises, **ONE)
    assert "raised RuntimeError: kernel launch failed" in finding(r)
    assert re.search(r"the call printed 52432\d\d bytes, ending:", r.text)
    assert "| the last words before the raise" in r.text and "yyyy" not in r.text


def test_replay_of_a_failure():
    r = attncheck.verify(hostile.raises, **ONE)
    run = r.failures[0]
    assert run.replay.startswith("python3 -m attncheck verify hostile:raises --property semantics --case '")
    again = attncheck.verify(hostile.raises, case=run.case, properties=["semantics"])
    assert again.exit_status == attncheck.FAILED and again.failures[0].case == run.case


def test_report_api():
    r = attncheck.verify(hostile.correct, **ONE)
    assert r.passed and r.status == "PASSED" and r.failures == [] and r.exit_status == 0
    run = r.runs[0]
    assert (run.property, run.axes, run.dtype, run.result, run.checked) == ("semantics", "spatial", "f32", "ok", 5)
    assert "attncheck.Report PASSED" in repr(r)


@pytest.mark.parametrize("kwargs, words", [
    (dict(axes=["diagonal"]), "--axes: 'diagonal' is not spatial, temporal or spatiotemporal"),
    (dict(cases=0), "--cases must be an integer in 1..1000000, not '0'"),
    (dict(dtypes=["f8"]), "f8"),
    (dict(properties=["speed"]), "speed"),
    (dict(precision="exact"), "exact"),
    (dict(array="jax"), "array must be 'torch', 'numpy' or 'auto', not 'jax'"),
    (dict(case="spatial f32 B=0"), "B"),
])
def test_bad_options_are_one_line_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        attncheck.verify(hostile.correct, **kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_not_callable():
    with pytest.raises(TypeError, match="is not callable"):
        attncheck.verify(42)


def test_names_outside_the_abi_alphabet_are_mapped():
    def Ünïcode_Attention(q, k, v, *, heads, scale, axes):  # noqa: N802
        return hostile.correct(q, k, v, heads=heads, scale=scale, axes=axes)
    r = attncheck.verify(Ünïcode_Attention, **ONE)
    assert r.exit_status == attncheck.PASSED and r.runs[0].impl == "ncode_attention"


def test_ctrl_c_stops_verify():
    """Python's SIGINT handler only sets a flag: verify looks at it between
    property runs and lets the KeyboardInterrupt out."""
    import os
    import signal

    def interrupts(q, k, v, *, heads, scale, axes):
        return hostile.correct(q, k, v, heads=heads, scale=scale, axes=axes)

    calls = []

    def first_call_sends_sigint(q, k, v, *, heads, scale, axes):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt at the next bytecode
        return interrupts(q, k, v, heads=heads, scale=scale, axes=axes)

    with pytest.raises(KeyboardInterrupt):
        attncheck.verify(first_call_sends_sigint, fork=False, cases=5)
    assert 0 < len(calls) < 24 * 5  # stopped after the first property run


def test_ctrl_c_stops_a_forked_verify(tmp_path):
    import os
    import signal
    once = tmp_path / "signalled"

    def signals_the_parent(q, k, v, *, heads, scale, axes):
        if not once.exists():  # one Ctrl-C, reaching verify (not the child's own process group)
            once.write_text("")
            os.kill(os.getppid(), signal.SIGINT)
        return hostile.correct(q, k, v, heads=heads, scale=scale, axes=axes)

    import time
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        attncheck.verify(signals_the_parent, cases=5)
    assert time.monotonic() - start < 10


def test_modules_and_lambdas():
    """An nn.Module instance is a function like any other; what cannot be
    named for `python3 -m attncheck` gets a replay that is a Python call."""
    class Attention(torch.nn.Module):
        def forward(self, q, k, v, *, heads, scale, axes):
            return hostile.correct(q, k, v, heads=heads, scale=scale, axes=axes)

    r = attncheck.verify(Attention(), **ONE)
    assert r.exit_status == attncheck.PASSED and r.runs[0].impl == "attention", r.text
    r = attncheck.verify(lambda q, k, v, **kw: 1 / 0, **ONE)
    assert r.failures[0].replay.startswith("attncheck.verify(_lambda_, case='spatial f32 B=1")
