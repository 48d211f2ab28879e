"""python3 -m attncheck verify MODULE_OR_FILE:FUNCTION [options of attncheck verify]"""

import importlib
import importlib.util
import os
import sys

from . import _bridge, _core

USAGE = """usage: python3 -m attncheck verify MODULE_OR_FILE:FUNCTION [options]
Checks every property on FUNCTION (a module name, or a path to a .py file, then
the function's name) over generated cases, in guarded memory, each call in a
forked child. FUNCTION(q, k, v, *, heads, scale, axes) returns out or writes
it into an `out` argument, and raises attncheck.Unsupported to decline.

  --array A            torch, numpy or auto: what FUNCTION receives (default auto:
                       torch tensors when its module imports torch, else NumPy arrays)
"""


def fail(message):
    print("attncheck: " + message, file=sys.stderr)
    return _bridge.ERROR


def load(target):
    """The function TARGET names; raises LookupError with a one-line reason."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise LookupError("%s: expected MODULE_OR_FILE:FUNCTION (e.g. attnblock3d.py:fixed)" % target)
    if where.endswith(".py") or os.sep in where:
        if not os.path.isfile(where):
            raise LookupError("%s: no such file" % where)
        path = os.path.abspath(where)
        modname = os.path.splitext(os.path.basename(path))[0]
        sys.path.insert(0, os.path.dirname(path))
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise LookupError("%s: importing it raised %s: %s" % (where, type(e).__name__, e))
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:
            raise LookupError("%s: cannot import it: %s: %s" % (where, type(e).__name__, e))
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            have = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise LookupError("%s has no '%s' (its functions: %s)" % (where, name, ", ".join(have) or "none"))
        obj = getattr(obj, part)
    if not callable(obj):
        raise LookupError("%s:%s is a %s, not a function" % (where, name, type(obj).__name__))
    return obj


def verify(args):
    if any(a in ("-h", "--help") for a in args):
        print(USAGE + _core.verify_options_help, end="")
        return _bridge.PASSED
    target, rest, array, i = None, [], None, 0
    valued = {"--impl", "--cases", "--seed", "--axes", "--dtype", "--json", "--junit", "--case", "--property",
              "--timeout", "--memory-limit", "--precision"}
    while i < len(args):
        a = args[i]
        if a == "--array":
            if i + 1 >= len(args):
                return fail("--array needs a value (python3 -m attncheck verify --help)")
            array = args[i + 1]
            i += 2
            continue
        if a in valued:
            rest += args[i:i + 2]
            i += 2
            continue
        if not a.startswith("-") and target is None:
            target = a
        else:
            rest.append(a)
        i += 1
    if target is None:
        return fail("verify needs MODULE_OR_FILE:FUNCTION (python3 -m attncheck verify --help)")
    try:
        fn = load(target)
    except LookupError as e:
        return fail(str(e))
    try:
        array = _bridge.choose_array(array)
        replay = "python3 -m attncheck verify " + _bridge.shlex.quote(target)
        if array != "torch":
            replay += " --array " + array
        report = _bridge.run(fn, rest, source=target, replay=replay, array=array)
    except (ValueError, ImportError) as e:
        return fail(str(e).replace("attncheck: ", "", 1) + " (python3 -m attncheck verify --help)")
    sys.stdout.write(report.text)
    sys.stdout.flush()
    sys.stderr.write(report.errors)
    return report.exit_status


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: python3 -m attncheck verify MODULE_OR_FILE:FUNCTION [options]\n"
              "       python3 -m attncheck verify --help")
        return _bridge.PASSED if argv else _bridge.ERROR
    if argv[0] != "verify":
        return fail("unknown command '%s' (python3 -m attncheck --help)" % argv[0])
    return verify(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
