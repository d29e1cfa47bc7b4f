"""Grading a submitted notebook without nbgrader: ``gptlib assignments grade``.

:func:`grade_notebook` does what nbgrader's autograde does, and refuses what it would let
through:

1. every teacher cell (locked, or a check) is restored from the source notebook by its
   ``grade_id``, source and metadata alike, so an edited check or changed points count for
   nothing; a solution cell keeps the student's text under the source's metadata;
2. a ``grade_id`` of the source that the submission lacks (a deleted cell, or one whose
   metadata was removed), or one it holds twice, stops the grading with
   :class:`GradingError`;
3. the notebook runs in a fresh kernel with ``$GPTLIB_GRADING_PROFILE`` set, so the
   profile is the grader's choice;
4. a check earns its points when its cell ran without an error (the kernel's reply, not
   only the cell's outputs) and wrote nothing to stderr, as in nbgrader.
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
from gptlib.assignments.release import default_source_dir, is_teacher_cell

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
        if self.suspicious:
            lines.append("  look at: " + "; ".join(self.suspicious))
        return "\n".join(lines)


def _grade_id(cell: Any) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def is_check_cell(cell: Any) -> bool:
    grading = cell.metadata.get("nbgrader", {})
    return bool(cell.cell_type == "code" and grading.get("grade") and not grading.get("solution"))


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


def _errors(cell: Any, reply: dict | None) -> str:
    """The cell's error as feedback ('' when it ran cleanly)."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return f"{output.ename}: {output.evalue}"
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stderr":
            return f"wrote to stderr: {output.text.strip()[:200]}"
    if reply is not None and reply.get("content", {}).get("status") == "error":
        content = reply["content"]
        return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
    return ""


def grade_notebook(path: str | Path, *, source: str | Path | None = None, profile: str = "smoke",
                   timeout: int = 600, workdir: str | Path | None = None, replay: str | None = None) -> GradeReport:
    """Restore, run and score one submitted notebook; see the module's docstring.

    ``source``: the teacher's notebook (default: the one of the same name in the checkout's
    ``notebooks/assignments``); a release notebook works too. ``profile``: the grading
    profile (``smoke``: a class in minutes; ``book``: the real model). ``replay``:
    ``$GPTLIB_GRADING_REPLAY`` for the kernel. The notebook runs in ``workdir`` (default: its
    own folder, where ``data/`` is). It executes the student's code: grade in a sandbox.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    source = Path(source) if source is not None else default_source_dir() / path.name
    nb = restore_cells(nbformat.read(path, as_version=4), nbformat.read(source, as_version=4), path.name)
    replies: dict[int, dict] = {}
    env = {GRADING_ENV: profile, "NBGRADER_EXECUTION": "autograde", **({REPLAY_ENV: replay} if replay else {})}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel starts with this process's environment
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(workdir or path.parent)}})
        client.on_cell_executed = lambda cell, cell_index, execute_reply, **kw: replies.__setitem__(cell_index, execute_reply)
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    checks, manual = [], []
    for index, cell in enumerate(nb.cells):
        grading = cell.metadata.get("nbgrader", {})
        if not grading.get("grade"):
            continue
        points = float(grading.get("points", 0))
        if grading.get("solution"):
            manual.append({"grade_id": grading["grade_id"], "points": points})
            continue
        feedback = _errors(cell, replies.get(index))
        checks.append({"grade_id": grading["grade_id"], "points": points, "score": 0.0 if feedback else points,
                       "feedback": feedback})
    return GradeReport(notebook=path.name, checks=checks, manual=manual, suspicious=suspicious_code(nb))


__all__ = ["SUSPICIOUS", "GradeReport", "GradingError", "grade_notebook", "is_check_cell", "restore_cells",
           "suspicious_code"]
