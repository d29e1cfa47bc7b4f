"""``python -m gptlib assignments build | grade``: the command line of the assignments.

``gptlib.cli`` adds these with :func:`add_assignments_parser` and runs them with
:func:`assignments_command`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_assignments_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``assignments build OUTDIR [--source DIR]`` and ``assignments grade NOTEBOOK...``."""
    asg = subparsers.add_parser("assignments", help="classroom assignments: build the release, grade submissions")
    actions = asg.add_subparsers(dest="action", required=True)
    b = actions.add_parser("build", help="write the release (notebooks without solutions, their data) to OUTDIR")
    b.add_argument("outdir", help="folder for the student notebooks, the data files they read and a README")
    b.add_argument("--source", default=None,
                   help="folder of the solution notebooks (default: the checkout's notebooks/assignments)")
    b.add_argument("--nbgrader-source", action="store_true",
                   help="write nbgrader's source folder instead: the notebooks with their solutions (no "
                        "outputs, no jupytext pairing) and their data, for source/<assignment>/ of a course")
    g = actions.add_parser("grade", help="restore the check cells of submitted notebooks, run and score them",
                           description="Each notebook's teacher cells are restored from the source notebook "
                                       "of the same name; it then runs in a fresh kernel (the student's "
                                       "process) under the grading profile, and this process judges every "
                                       "check, asking the kernel what the student's names hold. It runs the "
                                       "students' code: for untrusted submissions, grade in a container "
                                       "without network.")
    g.add_argument("notebooks", nargs="+", help="submitted notebooks (A01_....ipynb ...), data/ beside them")
    g.add_argument("--source", default=None,
                   help="folder of the source notebooks (default: the checkout's notebooks/assignments)")
    g.add_argument("--profile", default="smoke", choices=("smoke", "offline", "book"),
                   help="grading profile (default smoke: a tiny model, a class in minutes; offline: the real "
                        "data, random gpt2-small weights; book: the real model)")
    g.add_argument("--replay", default=None, choices=("full", "measure"),
                   help="how checks verify runs: train them again (full, the default) or measure the model")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    g.add_argument("--check-seconds", type=float, default=120.0,
                   help="seconds one call of a student's function, or one report, may take (default 120)")
    g.add_argument("--check-memory-mb", type=float, default=0.0,
                   help="the student's kernel's resident memory (MiB) allowed while it answers; 0: no limit")
    g.add_argument("--csv", default=None, metavar="FILE",
                   help="also write one row per student and notebook (student, assignment, score, possible, "
                        "graded by hand, flagged, look at) to FILE, for a gradebook or an LMS")
    asg.set_defaults(handler=assignments_command)
    return asg


def assignments_command(args: argparse.Namespace) -> int:
    """Run ``assignments build`` or ``assignments grade``; the exit status."""
    if args.action == "build":
        from gptlib.assignments.release import build_student_versions

        for path in build_student_versions(args.source, args.outdir, solutions=args.nbgrader_source):
            print(path)
        return 0
    from gptlib.assignments.grade import grade_notebook
    from gptlib.assignments.release import default_source_dir

    source = Path(args.source) if args.source else default_source_dir()
    rows = []
    for notebook in args.notebooks:
        student = student_of(notebook)
        report = grade_notebook(notebook, source=source / Path(notebook).name, profile=args.profile,
                                timeout=args.timeout, replay=args.replay, check_seconds=args.check_seconds,
                                check_memory_mb=args.check_memory_mb)
        print(f"== {student} ==\n{report.summary()}")
        rows.append({"student": student, "assignment": Path(notebook).stem, "score": report.score,
                     "possible": report.possible, "graded by hand": report.manual_possible,
                     "flagged": "; ".join(report.flagged), "look at": "; ".join(report.suspicious)})
    students = list(dict.fromkeys(row["student"] for row in rows))
    if len(rows) > 1:
        for student in students:
            mine = [row for row in rows if row["student"] == student]
            print(f"{student}: {sum(r['score'] for r in mine):g} / {sum(r['possible'] for r in mine):g} "
                  f"automatic points in {len(mine)} notebook(s)")
    if args.csv:
        import csv
        import io

        from gptlib.support.files import atomic_write_bytes

        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(args.csv, text.getvalue().encode("utf-8"))
        print(f"wrote {args.csv}: {len(rows)} row(s), {len(students)} student(s)")
    return 0


def student_of(notebook: str | Path) -> str:
    """Whose a submitted notebook is: the folder holding it (``alice/A01_....ipynb``), or, in
    nbgrader's layout (``submitted/alice/A01/A01_....ipynb``), the folder above the assignment's."""
    path = Path(notebook).resolve()
    folder = path.parent
    if folder.name.upper() in (path.stem.split("_")[0].upper(), path.stem.upper()):
        folder = folder.parent  # the assignment's folder (A01, or the notebook's name): the student is one up
    return folder.name or str(folder)


__all__ = ["add_assignments_parser", "assignments_command", "student_of"]
