"""nbgrader's autograde, with every check cell judged by the grader's process.

:class:`GradedExecute` is nbgrader's ``Execute`` preprocessor with
:class:`~gptlib.assignments.graded_execute.JudgingMixin`: the notebook runs in the student's
kernel as usual, and after each check cell nbgrader's process judges the check and replaces
the cell's outputs with its verdict, which is what ``SaveAutoGrades`` then scores. In
``nbgrader_config.py``::

    from gptlib.assignments.nbgrader_hook import autograde_preprocessors
    c.Autograde.autograde_preprocessors = autograde_preprocessors()
    c.GradedExecute.check_seconds = 120       # per question to the kernel
    c.GradedExecute.check_memory_mb = 6000    # the kernel's resident memory while it answers
    c.GradedExecute.data_dir = "source/ch6"   # the course's data/ as the teacher made it

``autograde_preprocessors`` (nbgrader 0.9.6's ``Autograde.autograde_preprocessors``, a
configurable list) is nbgrader's own list with ``GradedExecute`` in the place of ``Execute``.
"""

from __future__ import annotations

from typing import Any

from nbgrader.preprocessors import Execute

from gptlib.assignments.graded_execute import JudgingMixin


class GradedExecute(JudgingMixin, Execute):
    """nbgrader's Execute preprocessor, with every check cell judged by the grader's process."""


def autograde_preprocessors() -> list[Any]:
    """nbgrader's autograde preprocessors with :class:`GradedExecute` in place of Execute."""
    from nbgrader.converters import Autograde

    return [GradedExecute if p is Execute else p for p in Autograde.class_traits()["autograde_preprocessors"].default()]


__all__ = ["GradedExecute", "autograde_preprocessors"]
