"""attncheck from Python: verify any attention function on the same cases,
properties, guarded memory, diagnosis and replay as ``attncheck verify``.

    import attncheck
    report = attncheck.verify(my_attention, axes=["spatial"], dtypes=["f32"], cases=30, seed=1)
    print(report)              # the text `attncheck verify` prints
    report.exit_status         # 0 passed, 1 failed, 2 could not run, 3 not verified

``my_attention(q, k, v, *, heads, scale, axes)`` receives q (B, C, Tq, Hq, Wq),
k (B, C, Tk, Hk, Wk) and v (B, Cv, Tk, Hk, Wk) as torch tensors (or NumPy
arrays) over the checker's guarded memory, and returns out (B, Cv, Tq, Hq, Wq)
or writes it into an ``out`` argument; it declines a call by raising
``attncheck.Unsupported("why")``. ``axes`` is "spatial" (attend over (h, w)
within each (b, t)), "temporal" (over t within each (b, h, w)) or
"spatiotemporal" (over (t, h, w) within each b).

In pytest: ``test_x = attncheck.pytest.properties(my_attention)``.
From a shell: ``python3 -m attncheck verify FILE.py:FUNCTION [options]``.
"""

from ._bridge import ERROR, FAILED, NOT_VERIFIED, PASSED, Report, Run, Unsupported, verify

__version__ = "0.1.0"
__all__ = ["verify", "Unsupported", "Report", "Run", "PASSED", "FAILED", "ERROR", "NOT_VERIFIED"]
