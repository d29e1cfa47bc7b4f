"""Classroom assignments for Chapter 6 (``notebooks/assignments/A01_*.ipynb`` ...).

The package, one job per module:

* :mod:`~gptlib.assignments.runner`: ``run_experiment`` (on ``gptlib.finetune.run_finetune``),
  ``Run``, ``compare_runs``, ``plot_runs``, ``collect_predictions``;
* :mod:`~gptlib.assignments.profiles`: the assignment profiles, and the grader's choice of one
  (``$GPTLIB_GRADING_PROFILE``);
* :mod:`~gptlib.assignments.feedback`, :mod:`~gptlib.assignments.student`,
  :mod:`~gptlib.assignments.inputs`, :mod:`~gptlib.assignments.verify`: what the checks say,
  how they call a student's code, the inputs they make, how they verify a run;
* :mod:`~gptlib.assignments.a01` ... :mod:`~gptlib.assignments.a05`: the checks of each
  assignment, reached from the notebooks through :func:`gptlib.assignments.integrity.checks`;
* :mod:`~gptlib.assignments.release`, :mod:`~gptlib.assignments.grade`,
  :mod:`~gptlib.assignments.cli`: the student release, the grader, ``gptlib assignments``;
* grading outside the student's process: :mod:`~gptlib.assignments.answer` (the kernel's
  side: it answers, decides nothing), :mod:`~gptlib.assignments.channel` (the grader's
  questions, answers read safely), :mod:`~gptlib.assignments.judge` (one check cell's
  verdict), :mod:`~gptlib.assignments.graded_execute` and
  :mod:`~gptlib.assignments.nbgrader_hook` (nbclient's and nbgrader's execution with the
  verdicts), :mod:`~gptlib.assignments.authorship` (copies and wrappers of the
  library's or the book's code), :mod:`~gptlib.assignments.fingerprints`.

Names are loaded on first use, so ``import gptlib.assignments`` costs nothing; nothing here
imports ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "runner": ("Run", "collect_predictions", "compare_runs", "evaluate_loader", "experiment_config",
               "plot_runs", "run_experiment"),
    "profiles": ("GRADING_ENV", "active_profile", "assignment_profile", "setup"),
    "release": ("build_student_versions", "default_source_dir", "solution_lines", "solution_regions",
                "strip_solutions", "student_notebook"),
    "grade": ("GradeReport", "GradingError", "grade_notebook", "restore_cells"),
    "cli": ("add_assignments_parser", "assignments_command"),
    "feedback": ("CheckFailed",),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gptlib.assignments' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gptlib.assignments.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_WHERE))


__all__ = sorted(_WHERE)
