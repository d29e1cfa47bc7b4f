"""The grader's verdict on one check cell, computed in the grader's own process.

A locked check cell reads ``checks.<check>(<names and constants>)``. The grader takes that
text from the teacher's notebook, asks the student's kernel (through a
:class:`~gptlib.assignments.channel.Channel`) what the names hold, and runs the check of its
*own* installation of gptlib on the answers: the student's functions are called in the
kernel on inputs drawn fresh for this grading, runs are retrained here from their reported
settings, and the profile, the data and gptlib come from the grader's environment. Where
the task is to write a chapter function, :mod:`~gptlib.assignments.authorship` reads the
notebook's text for copies and wrappers of the library's or the book's code.

The verdict becomes the check cell's only output: ``OK: ...`` on stdout, or an error
``CheckFailed`` whose text is one short message (never the expected value). nbgrader scores
the cell from that output, whatever the kernel displayed.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlib.assignments import inputs
from gptlib.assignments.authorship import findings
from gptlib.assignments.channel import Channel, NoAnswer
from gptlib.assignments.feedback import wrap
from gptlib.assignments.integrity import ASSIGNMENT_MODULES
from gptlib.assignments.profiles import graded_as


@dataclass
class Verdict:
    """The grader's decision on one check cell."""

    grade_id: str
    passed: bool
    message: str
    flags: list[str] = field(default_factory=list)  # for the teacher: why the code is not the student's

    def outputs(self) -> list[Any]:
        """The cell's outputs that say this verdict (what nbgrader scores)."""
        from nbformat.v4 import new_output

        if self.passed:
            return [new_output("stream", name="stdout", text=self.message.rstrip("\n") + "\n")]
        text = wrap(f"Check failed: {self.message}")
        return [new_output("error", ename="CheckFailed", evalue=self.message, traceback=text.splitlines())]


@dataclass(frozen=True)
class CheckCall:
    """What a locked check cell asks: ``checks.<check>(<args>)`` of one assignment."""

    assignment: str
    check: str
    args: tuple[tuple[str, Any], ...]  # ("name", "run_61") or ("value", "data/support_messages.csv")


def parse_check(source: str) -> CheckCall:
    """The check a locked cell runs (ValueError when the text is not a check cell's)."""
    tree = ast.parse(source)
    assignment = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "checks" and \
                node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value) in ASSIGNMENT_MODULES:
            assignment = str(node.args[0].value)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Name) and n.func.value.id == "checks"]
    if assignment is None or len(calls) != 1 or calls[0].keywords:
        raise ValueError("not a check cell: it should call checks('aNN') and then one checks.<check>(...)")
    args = []
    for arg in calls[0].args:
        if isinstance(arg, ast.Name):
            args.append(("name", arg.id))
        elif isinstance(arg, ast.Constant):
            args.append(("value", arg.value))
        else:
            raise ValueError(f"a check cell's arguments are names or constants; got {ast.unparse(arg)}")
    return CheckCall(assignment, calls[0].func.attr, tuple(args))


def _resolve_data(value: Any, data_dir: Path | None) -> Any:
    """A relative data path of a check cell, read from the grader's copy of the course files."""
    if isinstance(value, str) and data_dir is not None and value.startswith("data/"):
        return str(Path(data_dir) / value)
    return value


def judge(grade_id: str, source: str, channel: Channel, student_sources: list[str], profile: str,
          data_dir: Path | None = None, replay: str = "full") -> Verdict:
    """Run one check in this process on what the student's kernel reports, under the grader's
    ``profile`` (``smoke`` or ``book``), verifying runs the ``replay`` way (``full`` or ``measure``)."""
    try:
        call = parse_check(source)
    except (ValueError, SyntaxError) as err:
        return Verdict(grade_id, False, f"the grader cannot read this check cell ({err}); tell your teacher.")
    module = importlib.import_module(f"gptlib.assignments.{call.assignment}")
    check = getattr(module, call.check, None)
    if check is None or call.check not in module.__all__:
        return Verdict(grade_id, False, f"the grader has no check {call.check!r}; tell your teacher.")
    check = inspect.unwrap(check)  # the check itself, not a student-run wrapper around it
    from gptlib.assignments.profiles import assignment_profile
    from gptlib.notebook import profile_device

    profile_device(assignment_profile(call.assignment.upper(), profile))  # the kernel's threads: same numbers
    inputs.draw_fresh()
    out = io.StringIO()
    try:
        names = [value for kind, value in call.args if kind == "name"]
        with graded_as(profile, replay):
            reported = channel.report(names)
            values = [reported[v] if kind == "name" else _resolve_data(v, data_dir) for kind, v in call.args]
            with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                warnings.simplefilter("ignore")
                check(*values)
    except AssertionError as failed:  # CheckFailed (of whichever import of feedback raised it)
        return Verdict(grade_id, False, str(failed), _flags_of(channel.calls, student_sources))
    except NoAnswer as err:
        return Verdict(grade_id, False, f"{err}.")
    except Exception as err:  # the grader's own trouble: said plainly, scored 0, logged by the caller
        return Verdict(grade_id, False, f"the grader could not run this check ({type(err).__name__}: "
                                        f"{str(err)[:160]}); tell your teacher.")
    finally:
        calls, channel.calls = channel.calls, []
    flags = _flags_of(calls, student_sources)
    if flags:
        return Verdict(grade_id, False, "flagged for your teacher: " + "; ".join(flags) + ". The task is to "
                       "write this function yourself.", flags)
    lines = out.getvalue().strip().splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("OK:")), None)
    return Verdict(grade_id, True, "\n".join(lines[first:]) if first is not None else "OK")


def _flags_of(calls: list[tuple[str, tuple[Any, ...]]], sources: list[str]) -> list[str]:
    out: list[str] = []
    for name in dict.fromkeys(n for n, refs in calls if refs):
        refs = next(refs for n, refs in calls if n == name and refs)
        out += [f for f in findings(sources, name, refs) if f not in out]
    return out


__all__ = ["CheckCall", "Verdict", "judge", "parse_check"]
