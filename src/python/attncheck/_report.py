"""What attncheck.verify returns: the report and its runs, with the command
line's exit statuses."""

from . import _core

PASSED = _core.EXIT_PASSED
FAILED = _core.EXIT_FAILED
ERROR = _core.EXIT_ERROR
NOT_VERIFIED = _core.EXIT_NOT_VERIFIED


class Run:
    """One property run: (property, axes family, dtype) over generated cases."""

    def __init__(self, d):
        self.__dict__.update(d)

    def __repr__(self):
        return "<attncheck.Run %s %s %s: %s, %d checked>" % (self.property, self.axes, self.dtype, self.result,
                                                             self.checked)


class Report:
    """What verify found. ``exit_status`` is the command line's: 0 every run
    checked at least one case and held, 1 a property failed, 2 could not
    run, 3 nothing failed but some run checked no case. ``str(report)`` is
    the text ``attncheck verify`` prints."""

    def __init__(self, status, text, errors, runs):
        self.exit_status = status
        self.text = text
        self.errors = errors
        self.runs = [Run(r) for r in runs]

    @property
    def status(self):
        return _core.exit_word(self.exit_status)

    @property
    def passed(self):
        return self.exit_status == PASSED

    @property
    def failures(self):
        return [r for r in self.runs if r.failed]

    def __str__(self):
        return self.text + self.errors

    def __repr__(self):
        return "<attncheck.Report %s: %d runs, %d failed>" % (self.status, len(self.runs), len(self.failures))
