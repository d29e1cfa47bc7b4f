"""Grading a submitted notebook without nbgrader: ``gptlib assignments grade``.

:func:`grade_notebook` does what nbgrader's autograde does with
:class:`~gptlib.assignments.nbgrader_hook.GradedExecute`, and refuses what it would let
through:

1. every teacher cell (locked, or a check) is restored from the source notebook by its
   ``grade_id``, source and metadata alike, so an edited check or changed points count for
   nothing; a solution cell keeps the student's text under the source's metadata;
2. a ``grade_id`` of the source that the submission lacks (a deleted cell, or one whose
   metadata was removed), or one it holds twice, stops the grading with
   :class:`GradingError`;
3. the notebook runs in a fresh kernel (the student's process) with
   ``$GPTLIB_GRADING_PROFILE`` set; after each check cell, this process judges the check
   (:mod:`gptlib.assignments.judge`): it asks the kernel what the student's names hold,
   calls the student's functions there on inputs it draws now, retrains runs itself, and
   compares here;
4. a check earns its points when the grader's verdict is a pass; what the cell displayed in
   the kernel counts for nothing. Functions that copy or wrap the library's or the book's
   code are flagged (:mod:`gptlib.assignments.authorship`) and score 0.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlib.assignments.profiles import GRADING_ENV, REPLAY_ENV
from gptlib.assignments.release import default_source_dir, is_check_cell, is_teacher_cell

# Code a student's cell has no need for, which reaches into the machinery of the checks.
SUSPICIOUS = {r"\bsys\.modules\b": "sys.modules", r"\bimportlib\b": "importlib", r"__dict__|\bvars\(": "a module's dict",
              r"set_custom_exc|showtraceback": "IPython's error display", r"gptlib\.assignments\b": "gptlib.assignments",
              r"\bbuiltins\b|__builtins__": "builtins", r"meta_path|path_hooks": "the import system",
              r"GPTLIB_GRADING": "the grading profile", r"\bsetattr\(": "setattr"}


class GradingError(ValueError):
    """A submission that cannot be graded as it is (a teacher cell missing or duplicated)."""


@dataclass
class GradeReport:
    """The result of grading one notebook: one entry per check, and the totals."""

    notebook: str
    checks: list[dict[str, Any]]
    manual: list[dict[str, Any]] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)  # "cell: what it reaches into"
    flagged: list[str] = field(default_factory=list)  # "grade_id: why the code is not the student's"

    @property
    def score(self) -> float:
        return sum(c["score"] for c in self.checks)

    @property
    def possible(self) -> float:
        """Automatic points possible."""
        return sum(c["points"] for c in self.checks)

    @property
    def manual_possible(self) -> float:
        return sum(c["points"] for c in self.manual)

    def __iter__(self):
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def summary(self) -> str:
        lines = [f"{self.notebook}: {self.score:g} / {self.possible:g} automatic points"
                 f" (+ {self.manual_possible:g} graded by hand)"]
        for c in self.checks:
            lines.append(f"  {c['grade_id']}: {c['score']:g} / {c['points']:g}"
                         + (f"  {c['feedback']}" if c["feedback"] else ""))
        if self.flagged:
            lines.append("  flagged (scored 0): " + "; ".join(self.flagged))
        if self.suspicious:
            lines.append("  look at: " + "; ".join(self.suspicious))
        return "\n".join(lines)


def _grade_id(cell: Any) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def restore_cells(submission: Any, source: Any, where: str = "the submission") -> Any:
    """The notebook to run: ``submission`` with every teacher cell taken from ``source``."""
    source_ids = [g for g in map(_grade_id, source.cells) if g]
    twice = sorted(g for g, n in Counter(source_ids).items() if n > 1)
    if twice:
        raise GradingError(f"the source notebook has the grade_id(s) {twice} more than once.")
    by_id = {_grade_id(c): c for c in source.cells if _grade_id(c)}
    seen = Counter(g for g in map(_grade_id, submission.cells) if g)
    twice = sorted(g for g, n in seen.items() if n > 1)
    if twice:
        raise GradingError(f"{where} holds the cell(s) {twice} more than once; a teacher cell was copied.")
    missing = [g for g in source_ids if g not in seen]
    if missing:
        raise GradingError(f"{where} lacks the cell(s) {missing}: deleted, or their nbgrader metadata was "
                           "removed. Grade it from a copy with those cells put back.")
    out = copy.deepcopy(submission)
    cells = []
    for cell in out.cells:
        gid = _grade_id(cell)
        if gid is None or gid not in by_id:
            cell.metadata.pop("nbgrader", None)  # the student's own cell: it cannot earn points
            cells.append(cell)
            continue
        original = by_id[gid]
        if is_teacher_cell(original):
            cell = copy.deepcopy(original)
        else:
            cell.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
            cell.cell_type = original.cell_type
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    out.cells = cells
    return out


def suspicious_code(nb: Any) -> list[str]:
    """Where the student's cells (solutions and cells of their own) reach into the checks'
    machinery: worth a look by the teacher, whatever the scores say."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or is_teacher_cell(cell):
            continue
        where = _grade_id(cell) or f"cell {index + 1}"
        what = sorted({label for pattern, label in SUSPICIOUS.items() if re.search(pattern, cell.source)})
        if what:
            found.append(f"{where}: {', '.join(what)}")
    return found


def grade_notebook(path: str | Path, *, source: str | Path | None = None, profile: str = "smoke",
                   timeout: int = 600, workdir: str | Path | None = None, replay: str | None = None,
                   check_seconds: float = 120.0, check_memory_mb: float = 0.0,
                   check_limits: dict[str, dict[str, float]] | None = None) -> GradeReport:
    """Restore, run and score one submitted notebook; see the module's docstring.

    ``source``: the teacher's notebook (default: the one of the same name in the checkout's
    ``notebooks/assignments``); a release notebook works too; its folder's ``data/`` is the
    data the grader reads. ``profile``: the grading profile (``smoke``: a class in minutes;
    ``book``: the real model). ``replay``: ``$GPTLIB_GRADING_REPLAY``. ``check_seconds``,
    ``check_memory_mb``: what one question to the student's kernel may take (``check_limits``:
    per check cell, ``{grade_id: {"seconds": ..., "memory_mb": ...}}``). The notebook
    runs in ``workdir`` (default: its own folder). It executes the student's code: grade
    untrusted submissions in a container without network (see the teacher's guide).
    """
    import nbformat

    from gptlib.assignments.graded_execute import JudgingClient

    path = Path(path)
    source = Path(source) if source is not None else default_source_dir() / path.name
    nb = restore_cells(nbformat.read(path, as_version=4), nbformat.read(source, as_version=4), path.name)
    env = {GRADING_ENV: profile, "NBGRADER_EXECUTION": "autograde", **({REPLAY_ENV: replay} if replay else {})}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel starts with this process's environment
    try:
        client = JudgingClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                               resources={"metadata": {"path": str(workdir or path.parent)}},
                               grading_profile=profile, data_dir=str(source.parent), check_seconds=check_seconds,
                               check_memory_mb=check_memory_mb, check_limits=dict(check_limits or {}),
                               replay=replay or "")
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    verdicts = {v.grade_id: v for v in client.verdicts}
    checks, manual = [], []
    for cell in nb.cells:
        grading = cell.metadata.get("nbgrader", {})
        if not grading.get("grade"):
            continue
        points = float(grading.get("points", 0))
        if grading.get("solution"):
            manual.append({"grade_id": grading["grade_id"], "points": points})
            continue
        verdict = verdicts.get(grading["grade_id"])
        feedback = "the check did not run (a cell above stopped the notebook)" if verdict is None else \
            "" if verdict.passed else verdict.message
        checks.append({"grade_id": grading["grade_id"], "points": points, "score": 0.0 if feedback else points,
                       "feedback": feedback})
    flagged = [f"{v.grade_id}: {'; '.join(v.flags)}" for v in verdicts.values() if v.flags]
    return GradeReport(notebook=path.name, checks=checks, manual=manual, suspicious=suspicious_code(nb),
                       flagged=flagged)


__all__ = ["SUSPICIOUS", "GradeReport", "GradingError", "grade_notebook", "is_check_cell", "restore_cells",
           "suspicious_code"]
