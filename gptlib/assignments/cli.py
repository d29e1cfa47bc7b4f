"""``python -m gptlib assignments build | grade``: the command line of the assignments.

``gptlib.cli`` adds these with :func:`add_assignments_parser` and runs them with
:func:`assignments_command`.
"""

from __future__ import annotations

import argparse


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
                                       "of the same name; it then runs in a fresh kernel under the grading "
                                       "profile. It runs the students' code: use a sandbox.")
    g.add_argument("notebooks", nargs="+", help="submitted notebooks (A01_....ipynb ...), data/ beside them")
    g.add_argument("--source", default=None,
                   help="folder of the source notebooks (default: the checkout's notebooks/assignments)")
    g.add_argument("--profile", default="smoke", choices=("smoke", "book"),
                   help="grading profile (default smoke: a tiny model, a class in minutes; book: the real model)")
    g.add_argument("--replay", default=None, choices=("full", "measure"),
                   help="how checks verify runs: train them again (full, the default) or measure the model")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    asg.set_defaults(handler=assignments_command)
    return asg


def assignments_command(args: argparse.Namespace) -> int:
    """Run ``assignments build`` or ``assignments grade``; the exit status."""
    from pathlib import Path

    if args.action == "build":
        from gptlib.assignments.release import build_student_versions

        for path in build_student_versions(args.source, args.outdir, solutions=args.nbgrader_source):
            print(path)
        return 0
    from gptlib.assignments.grade import grade_notebook
    from gptlib.assignments.release import default_source_dir

    source = Path(args.source) if args.source else default_source_dir()
    total = possible = 0.0
    for notebook in args.notebooks:
        report = grade_notebook(notebook, source=source / Path(notebook).name, profile=args.profile,
                                timeout=args.timeout, replay=args.replay)
        print(report.summary())
        total, possible = total + report.score, possible + report.possible
    if len(args.notebooks) > 1:
        print(f"total: {total:g} / {possible:g} automatic points")
    return 0


__all__ = ["add_assignments_parser", "assignments_command"]
