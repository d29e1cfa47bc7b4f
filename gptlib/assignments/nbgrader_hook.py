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

The grader reads the course's files (``data/...``) from the assignment's source folder
(``source/<assignment>/`` of the course, as nbgrader's ``CourseDirectory`` says), never from
the submission; ``c.GradedExecute.data_dir`` sets another folder (``{assignment}`` is
replaced by the assignment's id).

``autograde_preprocessors`` (nbgrader 0.9.6's ``Autograde.autograde_preprocessors``, a
configurable list) is nbgrader's own list with ``GradedExecute`` in the place of ``Execute``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbgrader.preprocessors import Execute

from gptlib.assignments.graded_execute import JudgingMixin


class GradedExecute(JudgingMixin, Execute):
    """nbgrader's Execute preprocessor, with every check cell judged by the grader's process."""

    def preprocess(self, nb: Any, resources: Any = None, km: Any = None) -> Any:
        self.__dict__["_assignment"] = ((resources or {}).get("nbgrader") or {}).get("assignment")
        return super().preprocess(nb, resources, km)

    def _data_dir(self) -> Path | None:
        assignment = self.__dict__.get("_assignment") or ""
        if self.data_dir:
            return Path(self.data_dir.format(assignment=assignment))
        if assignment:
            from nbgrader.coursedir import CourseDirectory

            course = CourseDirectory(config=self.config)
            return Path(course.format_path(course.source_directory, ".", assignment))
        return super()._data_dir()


def autograde_preprocessors() -> list[Any]:
    """nbgrader's autograde preprocessors with :class:`GradedExecute` in place of Execute."""
    from nbgrader.converters import Autograde

    return [GradedExecute if p is Execute else p for p in Autograde.class_traits()["autograde_preprocessors"].default()]


__all__ = ["GradedExecute", "autograde_preprocessors"]
