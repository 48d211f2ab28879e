"""The pytest plugin, through pytest's own pytester (each run a subprocess
that loads the plugin from the package's entry point, as a user's does)."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import EXAMPLES, HERE

pytest_plugins = ["pytester"]

THREE_LINES = """\
import attncheck.pytest
from attnblock3d import {fn}
test_{fn} = attncheck.pytest.properties({fn}{extra})
"""


@pytest.fixture
def run(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([EXAMPLES, HERE, os.environ.get("PYTHONPATH", "")]))

    def run(source, *args):
        pytester.makepyfile(test_kernel=source)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    return run


def test_fixed_passes_one_item_per_property_axes_and_dtype(run):
    r = run(THREE_LINES.format(fn="fixed", extra=""), "-v", "--attncheck-cases", "4")
    r.assert_outcomes(passed=24)
    r.stdout.fnmatch_lines(["*test_kernel.py::test_fixed[[]semantics-spatial-f32[]] PASSED*",
                            "*test_kernel.py::test_fixed[[]robustness-spatiotemporal-f32[]] PASSED*"])


def test_unfixed_fails_with_the_diagnosis_and_a_replay(run, pytester):
    r = run(THREE_LINES.format(fn="unfixed", extra=', axes=["spatial"], properties=["semantics", "memory"]'),
            "--attncheck-cases", "10")
    r.assert_outcomes(failed=1, passed=1)
    out = r.stdout.str()
    assert "attncheck: semantics spatial f32 FAILED" in out
    assert "without the permute (the unfixed Open-Sora-Plan AttnBlock3D)" in out
    replay = re.search(r"replay: (pytest .*)", out).group(1)
    words = shlex.split(replay)
    assert words[1] == "test_kernel.py::test_unfixed[semantics-spatial-f32]"
    assert words[2].startswith("--attncheck-case=spatial f32 ")
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", *words[1:])
    again.assert_outcomes(failed=1)
    assert "without the permute" in again.stdout.str()


def test_selection_dtypes_and_stop_at_first_failure(run):
    source = THREE_LINES.format(fn="unfixed", extra=', axes=["spatial", "temporal"]')
    r = run(source, "--attncheck-cases", "3", "-k", "semantics", "--attncheck-dtypes", "f32,f64", "-v")
    r.assert_outcomes(failed=4)
    r.stdout.fnmatch_lines(["*test_unfixed[[]semantics-temporal-f64[]] FAILED*"])
    r = run(source, "--attncheck-cases", "3", "-x")
    r.assert_outcomes(failed=1)


def test_nothing_checked_is_a_skip_with_the_reason(run):
    source = ("import attncheck.pytest\nimport hostile\n"
              "test_declines = attncheck.pytest.properties(hostile.declines, axes='spatial', properties='semantics')\n")
    r = run(source, "--attncheck-cases", "3", "-rs")
    r.assert_outcomes(skipped=1)
    r.stdout.fnmatch_lines(["*attncheck: nothing verified: every call declined: this kernel serves bfloat16 only*"])


def test_junitxml_and_seed(run, pytester):
    source = THREE_LINES.format(fn="fixed", extra=', properties=["semantics"]')
    r = run(source, "--attncheck-cases", "3", "--attncheck-seed", "7", "--junitxml=report.xml")
    r.assert_outcomes(passed=3)
    xml = (pytester.path / "report.xml").read_text()
    assert xml.count("<testcase ") == 3 and 'name="test_fixed[semantics-temporal-f32]"' in xml


def test_a_replay_case_of_another_family_skips_the_other_items(run):
    source = THREE_LINES.format(fn="fixed", extra=', properties=["semantics"]')
    case = ("temporal f32 B=1 C=1 Cv=1 heads=1 q=2x1x2 k=1x1x2 scale=1 share=none place=low "
            "Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 "
            "Lout=0/1/0:0:0:0:0/0/a/0/0 Vq=normal:0 Vk=normal:0 Vv=normal:0")
    r = run(source, "--attncheck-case=" + case)
    r.assert_outcomes(passed=1, skipped=2)
    r = run(source, "--attncheck-case=nonsense")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "--attncheck-case: case: 'nonsense' is not spatial, temporal or spatiotemporal" in r.stderr.str()


def test_bad_arguments_to_properties_fail_at_collection(run):
    r = run(THREE_LINES.format(fn="fixed", extra=', axes=["diagonal"]'))
    assert r.ret != 0
    assert "axes 'diagonal' is not one of spatial, temporal, spatiotemporal" in r.stdout.str()


def test_plugin_is_registered_by_its_entry_point():
    r = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, timeout=120)
    assert "--attncheck-cases" in r.stdout and "--attncheck-dtypes" in r.stdout


def test_xdist_workers(run):
    r = run(THREE_LINES.format(fn="unfixed", extra=', axes=["spatial"], properties=["semantics", "memory"]'),
            "-n", "2", "--attncheck-cases", "10")
    r.assert_outcomes(failed=1, passed=1)
    assert "without the permute (the unfixed Open-Sora-Plan AttnBlock3D)" in r.stdout.str()
