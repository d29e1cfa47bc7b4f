"""The release: the student versions of the assignments, in a folder a teacher can hand out.

The source notebooks (``notebooks/assignments/A01_*.ipynb`` ...) hold the teacher's solutions
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, as nbgrader does.
:func:`build_student_versions` writes a release: every solution region replaced by nbgrader's
placeholder, outputs and execution counts cleared, the jupytext pairing removed, every
teacher cell locked, the data files the notebooks read, and a short README for students.
Nothing else goes in: no solutions, no ``runs/`` or ``figures/``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from gptlib.support.files import atomic_write_bytes

BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
CODE_PLACEHOLDER = ("# YOUR CODE HERE", "raise NotImplementedError()")
ANSWER_PLACEHOLDER = "YOUR ANSWER HERE"
JUPYTEXT_CELL_KEYS = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker")
KEPT_OUT = {"runs", "figures", ".ipynb_checkpoints", "__pycache__", "feedback"}
STUDENT_README = """\
# Chapter 6 assignments

Open the notebooks in Jupyter (`A01_...ipynb` first) with gptlib installed; `data/` must stay
next to them.

* Cells with `# YOUR CODE HERE` (or `YOUR ANSWER HERE`) are yours: replace the placeholder.
* The cell after each task is a check. It prints a line starting with `OK:` or says what is
  wrong. Checks and the other given cells are locked: changing them changes nothing, since
  grading restores them.
* `PROFILE = None` runs the book's setup (pretrained gpt2-small, the real data). Without the
  pretrained weights, set `PROFILE = "offline"` (the real data, gpt2-small-shaped random
  weights: real numbers of a model that was never pretrained, at the same cost). To try
  things out in seconds, set `PROFILE = "smoke"` (a tiny random model, made-up data; its
  numbers mean nothing). Grading always uses the profile your teacher chooses.
* Run the whole notebook top to bottom (Kernel > Restart and Run All) before you hand it in.
* When grading, the grader runs every check again outside your notebook, on new inputs, and
  retrains your runs. Write each function yourself: one that is, calls or copies gptlib's or
  torch's function for the task scores 0 on its check and is flagged for your teacher, and so
  is a function in a notebook whose cells use what no task needs (`exec`, `__code__`,
  IPython's transformers, `sys.meta_path`, threads, ...).
"""


def _marker(line: str) -> str | None:
    """BEGIN SOLUTION / END SOLUTION when ``line`` is such a marker (``### BEGIN SOLUTION``)."""
    text = line.strip().lstrip("#").strip()
    return text if text in (BEGIN_SOLUTION, END_SOLUTION) else None


def solution_regions(source: str) -> list[tuple[int, int]]:
    """(begin, end) line indices of each solution region of a cell, markers included.

    Raises ValueError for a BEGIN without END, an END without BEGIN, or nested regions.
    """
    regions, begin = [], None
    for i, line in enumerate(source.splitlines()):
        mark = _marker(line)
        if mark == BEGIN_SOLUTION:
            if begin is not None:
                raise ValueError(f"line {i + 1}: BEGIN SOLUTION inside another solution region")
            begin = i
        elif mark == END_SOLUTION:
            if begin is None:
                raise ValueError(f"line {i + 1}: END SOLUTION without BEGIN SOLUTION")
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise ValueError(f"line {begin + 1}: BEGIN SOLUTION without END SOLUTION")
    return regions


def solution_lines(source: str) -> list[str]:
    """The lines strictly inside the solution regions of a cell (markers excluded)."""
    lines = source.splitlines()
    return [lines[i] for begin, end in solution_regions(source) for i in range(begin + 1, end)]


def strip_solutions(source: str, cell_type: str = "code") -> str:
    """The cell's text with every solution region replaced by nbgrader's placeholder.

    Code: ``# YOUR CODE HERE`` and ``raise NotImplementedError()``, indented like the
    BEGIN marker; markdown: ``YOUR ANSWER HERE``. Text outside the markers is kept.
    """
    lines = source.splitlines()
    out: list[str] = []
    pos = 0
    for begin, end in solution_regions(source):
        out += lines[pos:begin]
        indent = re.match(r"\s*", lines[begin]).group(0)
        if cell_type == "code":
            out += [indent + line for line in CODE_PLACEHOLDER]
        else:
            out.append(ANSWER_PLACEHOLDER)
        pos = end + 1
    out += lines[pos:]
    return "\n".join(out)


def is_teacher_cell(cell: Any) -> bool:
    """A cell the student may not change: nbgrader-locked, or a check (grade, not solution)."""
    grading = cell.metadata.get("nbgrader", {})
    return bool(grading.get("locked") or (grading.get("grade") and not grading.get("solution")))


def is_check_cell(cell: Any) -> bool:
    """A check: a code cell that earns points and is not the student's to write."""
    grading = cell.metadata.get("nbgrader", {})
    return bool(cell.cell_type == "code" and grading.get("grade") and not grading.get("solution"))


def source_notebook(nb: Any) -> Any:
    """The teacher's notebook as nbgrader's source: solutions kept; outputs, counts, run
    metadata and the jupytext pairing removed; teacher cells locked."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("jupytext", None)  # a plain notebook, not a pair
    for cell in nb.cells:
        for key in ("execution", *JUPYTEXT_CELL_KEYS):
            cell.metadata.pop(key, None)
        if is_teacher_cell(cell):
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def student_notebook(nb: Any, where: str = "notebook") -> Any:
    """A student copy of a notebook node: :func:`source_notebook` (outputs and counts cleared,
    jupytext metadata removed, teacher cells locked) with the solutions replaced.

    nbgrader's rule is followed for cells marked as solution cells but holding no markers:
    the whole cell becomes the placeholder.
    """
    nb = source_notebook(nb)
    for index, cell in enumerate(nb.cells):
        grading = cell.metadata.get("nbgrader", {})
        try:
            regions = solution_regions(cell.source)
        except ValueError as err:
            raise ValueError(f"{where}, cell {index}: {err}") from None
        if regions:
            cell.source = strip_solutions(cell.source, cell.cell_type)
        elif grading.get("solution") and cell.cell_type in ("code", "markdown"):
            cell.source = "\n".join(CODE_PLACEHOLDER) if cell.cell_type == "code" else ANSWER_PLACEHOLDER
    return nb


def default_source_dir() -> Path:
    """``notebooks/assignments`` of the checkout gptlib runs from, or of the current folder."""
    candidates = [Path(__file__).resolve().parents[2] / "notebooks" / "assignments",
                  Path.cwd() / "notebooks" / "assignments", Path.cwd()]
    for folder in candidates:
        if any(folder.glob("A[0-9][0-9]_*.ipynb")):
            return folder
    raise FileNotFoundError(
        "Cannot find the assignment notebooks (notebooks/assignments/A01_*.ipynb ...); run this from "
        "the repository's root or pass the folder with --source.")


def assignment_notebooks(src_dir: str | Path) -> list[Path]:
    """The assignment notebooks (``A01_*.ipynb`` ...) of a folder, in order."""
    return sorted(Path(src_dir).glob("A[0-9][0-9]_*.ipynb"))


def data_files(src_dir: str | Path) -> list[Path]:
    """The files of ``src_dir/data`` (what the notebooks read), without run outputs."""
    data = Path(src_dir) / "data"
    if not data.is_dir():
        return []
    return sorted(p for p in data.rglob("*") if p.is_file() and not KEPT_OUT & set(p.relative_to(data).parts))


def build_student_versions(src_dir: str | Path | None = None, out_dir: str | Path = "student", *,
                           solutions: bool = False) -> list[Path]:
    """Write the release of every assignment notebook of ``src_dir`` into ``out_dir``.

    The student notebooks (see :func:`student_notebook`), ``data/`` and a README; every file
    is written atomically. Returns the paths written. ``out_dir`` may not be ``src_dir`` or
    lie inside it, so that the solutions are never overwritten. ``solutions=True`` writes
    nbgrader's source folder instead (:func:`source_notebook`: the solutions kept, no README),
    for ``source/<assignment>/`` of an nbgrader course.
    """
    import nbformat

    src = Path(src_dir) if src_dir is not None else default_source_dir()
    out = Path(out_dir)
    notebooks = assignment_notebooks(src)
    if not notebooks:
        raise FileNotFoundError(f"No assignment notebooks (A01_*.ipynb ...) in {src}.")
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise ValueError(f"The output folder {out} is (inside) the source folder {src}; choose "
                         "another one, so that the solutions are never overwritten.")
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        student = source_notebook(nb) if solutions else student_notebook(nb, where=path.name)
        nbformat.validate(student)
        text = nbformat.writes(student)
        written.append(atomic_write_bytes(out / path.name, (text if text.endswith("\n") else text + "\n").encode()))
    for file in data_files(src):
        written.append(atomic_write_bytes(out / "data" / file.relative_to(src / "data"), file.read_bytes()))
    if not solutions:
        written.append(atomic_write_bytes(out / "README.md", STUDENT_README.encode()))
    return written


__all__ = ["ANSWER_PLACEHOLDER", "BEGIN_SOLUTION", "CODE_PLACEHOLDER", "END_SOLUTION", "KEPT_OUT",
           "assignment_notebooks", "build_student_versions", "data_files", "default_source_dir",
           "is_teacher_cell", "solution_lines", "solution_regions", "source_notebook", "strip_solutions",
           "student_notebook"]
