"""attncheck's pytest plugin (registered by the package's pytest11 entry point).

A kernel team's test file is three lines:

    import attncheck.pytest
    from my_kernels import my_attention
    test_my_attention = attncheck.pytest.properties(my_attention, axes=["spatial", "temporal"])

That is one pytest item per property, axes family and dtype, named
``test_my_attention[semantics-spatial-f32]``, so ``-k``, ``-x``,
``--junitxml`` and pytest-xdist work on them. A failure's message is the
minimal case, its diagnosis and a replay command; a run that checked nothing
(every call declined, say) is a skip with the reason. Options:
``--attncheck-cases``, ``--attncheck-seed``, ``--attncheck-dtypes`` and
``--attncheck-case`` (replay one case).
"""

import shlex

import pytest

from . import _bridge, _core

PROPERTIES = ("semantics", "layout_invariance", "memory", "group_independence", "query_permutation",
              "key_permutation", "head_independence", "robustness")
AXES = ("spatial", "temporal", "spatiotemporal")


def pytest_addoption(parser):
    group = parser.getgroup("attncheck", "attncheck: attention kernel properties")
    group.addoption("--attncheck-cases", type=int, default=None, metavar="N",
                    help="generated cases per property, axes family and dtype (default: the test's, or 30)")
    group.addoption("--attncheck-seed", type=int, default=None, metavar="S",
                    help="the seed of the generated cases (default: the test's, or 1)")
    group.addoption("--attncheck-dtypes", default=None, metavar="LIST",
                    help="comma-separated dtypes: f32, f64, f16, bf16 (default: the test's, or f32)")
    group.addoption("--attncheck-case", default=None, metavar="TEXT",
                    help="replay one case (the text of a failure's replay command) on the selected items")


def pytest_configure(config):
    case = config.getoption("attncheck_case", None)
    if case:
        try:
            _core.case_axes_dtype(case)
        except ValueError as e:
            raise pytest.UsageError(str(e))


def _words(x):
    return [x] if isinstance(x, str) else list(x)


class _Spec:
    def __init__(self, fn, axes, dtypes, properties, cases, seed, options, array):
        self.fn = fn
        self.axes = _words(axes) if axes is not None else list(AXES)
        self.dtypes = _words(dtypes) if dtypes is not None else None
        self.properties = _words(properties) if properties is not None else list(PROPERTIES)
        self.cases = cases
        self.seed = seed
        self.options = options
        self.array = array
        for a in self.axes:
            if a not in AXES:
                raise ValueError("attncheck.pytest.properties: axes '%s' is not one of %s" % (a, ", ".join(AXES)))
        for p in self.properties:
            if p not in PROPERTIES:
                raise ValueError("attncheck.pytest.properties: property '%s' is not one of %s" %
                                 (p, ", ".join(PROPERTIES)))


class _Param:
    """One item's run: (property, axes family, dtype) of one function."""

    def __init__(self, spec, prop, axes, dtype):
        self.spec, self.property, self.axes, self.dtype = spec, prop, axes, dtype

    @property
    def id(self):
        return "%s-%s-%s" % (self.property, self.axes, self.dtype)

    def check(self, config, nodeid):
        spec = self.spec
        case = config.getoption("attncheck_case", None)
        args = ["--property", self.property, "--axes", self.axes, "--dtype", self.dtype]
        if case:
            axes, dtype = _core.case_axes_dtype(case)
            if (axes, dtype) != (self.axes, self.dtype):
                pytest.skip("--attncheck-case is a %s %s case; this item checks %s %s" %
                            (axes, dtype, self.axes, self.dtype))
            args += ["--case", case]
        else:
            cases = config.getoption("attncheck_cases", None) or spec.cases
            seed = config.getoption("attncheck_seed", None)
            seed = spec.seed if seed is None else seed
            if cases is not None:
                args += ["--cases", str(cases)]
            if seed is not None:
                args += ["--seed", str(seed)]
        args += spec.options
        replay = "pytest %s --attncheck-case={case}" % shlex.quote(nodeid)
        report = _bridge.run(spec.fn, args, replay=replay, array=spec.array)
        status = report.exit_status
        if status == _bridge.PASSED:
            return report
        if status == _bridge.FAILED:
            text = "".join(r.failure_text for r in report.failures)
            pytest.fail("attncheck: %s %s %s FAILED\n%s" % (self.property, self.axes, self.dtype, text),
                        pytrace=False)
        if status == _bridge.NOT_VERIFIED:
            reasons = "; ".join(r.not_verified for r in report.runs if r.not_verified)
            pytest.skip("attncheck: nothing verified: " + (reasons or "no case was checked"))
        errors = "; ".join(r.error for r in report.runs if r.error) or report.errors.strip() or report.text
        pytest.fail("attncheck could not run: " + errors, pytrace=False)


def properties(fn, *, axes=None, dtypes=None, properties=None, cases=None, seed=None, precision=None,
               strict=False, no_declines=False, fork=True, timeout=None, array=None):
    """A pytest test function checking fn on every property (or
    ``properties``), axes family and dtype: assign it to a ``test_*`` name.
    The keywords are attncheck.verify's; ``--attncheck-dtypes``,
    ``--attncheck-cases`` and ``--attncheck-seed`` on pytest's command line
    override dtypes, cases and seed."""
    options = _bridge._options(None, None, None, None, None, precision, strict, no_declines, fork, None, timeout,
                               None, None, None, False)
    spec = _Spec(fn, axes, dtypes, properties, cases, seed, options, array)

    def test(attncheck_run, request):
        attncheck_run.check(request.config, request.node.nodeid)

    test._attncheck_spec = spec
    test.__doc__ = "attncheck properties of %s" % getattr(fn, "__qualname__", fn)
    return test


def pytest_generate_tests(metafunc):
    spec = getattr(metafunc.function, "_attncheck_spec", None)
    if spec is None:
        return
    option = metafunc.config.getoption("attncheck_dtypes", None)
    dtypes = option.split(",") if option else (spec.dtypes or ["f32"])
    params = [_Param(spec, p, a, d) for d in dtypes for a in spec.axes for p in spec.properties]
    metafunc.parametrize("attncheck_run", params, ids=[p.id for p in params])
