"""python3 -m attncheck verify MODULE_OR_FILE:FUNCTION: exit statuses, errors, replay."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import EXAMPLES, HERE


def attncheck(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "attncheck", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def example(name):
    return os.path.join(EXAMPLES, name)


# The README's commands, with default options (ctest runs the long ones as their own tests).
@pytest.mark.parametrize("target", ["attnblock3d.py:fixed", "sdpa.py:sdpa", "einsum.py:attention"])
def test_examples_pass_with_default_options(target):
    r = attncheck("verify", example(target))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASSED: 24 property runs; 720 cases checked" in r.stdout


def test_unfixed_attnblock3d_fails_naming_the_permute():
    r = attncheck("verify", example("attnblock3d.py:unfixed"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED semantics (spatial, f32)" in r.stdout
    assert ("diagnosis: output equals spatial attention computed with reshape(B*T, C, H*W) without the permute "
            "(the unfixed Open-Sora-Plan AttnBlock3D)") in r.stdout
    # Its replay line reproduces the failure.
    replay = re.search(r"FAILED semantics \(spatial, f32\).*?replay: (.*?)\n", r.stdout, re.S).group(1)
    words = shlex.split(replay)
    assert words[:4] == ["python3", "-m", "attncheck", "verify"]
    again = attncheck(*words[3:])
    assert again.returncode == 1 and "without the permute" in again.stdout


def test_options_and_reports(tmp_path):
    out = tmp_path / "r.json"
    r = attncheck("verify", example("einsum.py:attention"), "--axes", "temporal", "--property", "semantics",
                  "--cases", "20", "--dtype", "f32,f16,bf16,f64", "--json", str(out), "--brief")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("attention: PASSED, 4 property runs; 80 cases checked")
    report = json.loads(out.read_text())
    assert report["exit_status"] == 0 and report["target"].endswith("einsum.py:attention")
    assert [run["dtype"] for run in report["runs"]] == ["f32", "f16", "bf16", "f64"]


def test_module_target_and_numpy(tmp_path):
    r = attncheck("verify", "hostile:numpy_attention", "--array", "numpy", "--cases", "5", "--brief", cwd=HERE)
    assert r.returncode == 0, r.stdout + r.stderr
    r = attncheck("verify", "hostile:declines", "--cases", "2", "--axes", "spatial", cwd=HERE)
    assert r.returncode == 3 and "every call declined: this kernel serves bfloat16 only" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["verify", "nowhere.py:f"], "attncheck: nowhere.py: no such file"),
    (["verify", "EX/attnblock3d.py:nothing"], "has no 'nothing' (its functions: fixed, unfixed)"),
    (["verify", "EX/attnblock3d.py:torch"], "attnblock3d.py:torch is a module, not a function"),
    (["verify", "EX/attnblock3d.py"], "expected MODULE_OR_FILE:FUNCTION"),
    (["verify", "no_such_module_xyz:f"], "no_such_module_xyz: cannot import it: ModuleNotFoundError"),
    (["verify"], "verify needs MODULE_OR_FILE:FUNCTION"),
    (["verify", "EX/sdpa.py:sdpa", "--axes", "diagonal"], "--axes: 'diagonal' is not spatial"),
    (["verify", "EX/sdpa.py:sdpa", "--cases", "-1"], "--cases must be an integer"),
    (["verify", "EX/sdpa.py:sdpa", "--frobnicate"], "verify: unknown option '--frobnicate'"),
    (["verify", "EX/sdpa.py:sdpa", "--array", "jax"], "array must be 'torch', 'numpy' or 'auto'"),
    (["verify", "EX/sdpa.py:sdpa", "--case", "nonsense"], "--case:"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    ([], "usage: python3 -m attncheck verify"),
])
def test_usage_errors_exit_2_with_one_line(args, words):
    r = attncheck(*[a.replace("EX/", EXAMPLES + "/") for a in args])
    assert r.returncode == 2, r.stdout + r.stderr
    assert words in r.stderr + r.stdout
    if args:
        assert r.stderr.count("\n") == 1 and r.stdout == "", r.stderr


def test_import_error_of_the_file(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('no GPU here')\n")
    r = attncheck("verify", "%s:f" % bad)
    assert r.returncode == 2 and "broken.py: importing it raised RuntimeError: no GPU here" in r.stderr


def test_help():
    r = attncheck("verify", "--help")
    assert r.returncode == 0 and "--array A" in r.stdout and "--precision P" in r.stdout


def test_without_torch_numpy_arrays_are_the_default():
    code = ("import sys; sys.modules['torch'] = None\n"  # torch cannot be imported
            "import attncheck, hostile\n"
            "r = attncheck.verify(hostile.numpy_attention, cases=5, axes='temporal')\n"
            "print(r.exit_status, r.runs[0].checked)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE, timeout=300)
    assert r.returncode == 0 and r.stdout.split() == ["0", "5"], r.stdout + r.stderr
