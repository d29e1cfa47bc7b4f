"""Grading before and after issue 21, side by side in one run: time, and what cheats score.

*Before* is the grader of commit ``--before`` (default ``45958e6``, the last one before issue
21), checked out in a temporary git worktree and put first on ``PYTHONPATH``: its checks run
inside the student's kernel. *After* is this checkout: the kernel only answers, the grader's
process judges (``gptlib.assignments.graded_execute``). Both under the smoke profile.

1. **Time.** One honest submission of each assignment (the solution notebook) graded with
   ``python -m gptlib assignments grade --profile smoke``, before and after alternately,
   ``--repeats`` times each, as whole processes (start, imports, kernel, grading).
2. **Cheats.** One nbgrader course holds the solutions, the untouched release and every
   cheat of ``tests/grading_cheats.py``; ``nbgrader autograde`` (0.9.6) grades it twice:
   with nbgrader's own Execute and the old checks, then with ``GradedExecute``. For each
   cheat: the points of the checks it aims at, before and after.

    python benchmarks/grading.py --save benchmarks/results/grading.json   # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOURCE = ROOT / "notebooks" / "assignments"
BIN = Path(sys.executable).parent
COURSE = "ch6"


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 3600) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - start


def environment(home: Path, before: Path | None) -> dict[str, str]:
    env = {**os.environ, "GPTLIB_GRADING_PROFILE": "smoke", "GPTLIB_HOME": str(home),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("GPTLIB_DATA_DIR", None)
    if before is not None:
        env["PYTHONPATH"] = str(before) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    else:
        env.pop("PYTHONPATH", None)
    return env


def time_honest(work: Path, before: Path, repeats: int) -> dict[str, dict[str, list[float]]]:
    from gptlib.assignments.release import build_student_versions

    solved = work / "solved"
    build_student_versions(SOURCE, solved, solutions=True)
    times: dict[str, dict[str, list[float]]] = {}
    for path in sorted(solved.glob("A0*.ipynb")):
        times[path.stem] = {"before": [], "after": []}
        for _ in range(repeats):
            for label, tree in (("before", before), ("after", None)):
                env = environment(work / f"home-{label}", tree)
                seconds = run([sys.executable, "-m", "gptlib", "assignments", "grade", str(path), "--profile", "smoke",
                               "--source", str(SOURCE)], cwd=work, env=env)
                times[path.stem][label].append(seconds)
                print(f"  {path.stem} {label}: {seconds:.1f} s", flush=True)
    return times


def course_scores(root: Path, names: list[str], students: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    from nbgrader.api import Gradebook

    scores: dict[str, dict[str, dict[str, float]]] = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", COURSE) as gb:
        for student in students:
            scores[student] = {}
            for name in names:
                try:
                    nb = gb.find_submission_notebook(name, COURSE, student)
                except Exception:
                    continue
                scores[student][name] = {g.name: g.auto_score for g in nb.grades if g.cell.cell_type == "code"}
    return scores


def cheats(work: Path, before: Path) -> dict[str, object]:
    import nbformat

    from gptlib.assignments.release import build_student_versions
    from tests.grading_cheats import CHEATS

    root = work / "course"
    source = root / "source" / COURSE
    build_student_versions(SOURCE, source, solutions=True)
    base = ("c = get_config()\n"
            f"c.CourseDirectory.root = {str(root)!r}\nc.CourseDirectory.course_id = {COURSE!r}\n"
            "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '*.pyc', '__pycache__', 'feedback', 'runs', 'figures']\n"
            "c.Execute.timeout = 300\n")
    after = ("from gptlib.assignments.nbgrader_hook import autograde_preprocessors\n"
             "c.Autograde.autograde_preprocessors = autograde_preprocessors()\n")
    config = root / "nbgrader_config.py"
    config.write_text(base)
    env_before = environment(work / "home-course-before", before)
    run([str(BIN / "nbgrader"), "generate_assignment", COURSE, "--force"], root, env_before)
    release = root / "release" / COURSE
    names = sorted(p.stem for p in release.glob("A0*.ipynb"))
    read = {n: nbformat.read(release / f"{n}.ipynb", as_version=4) for n in names}

    def submit(student: str, notebooks: dict[str, object], files: dict[str, str]) -> None:
        folder = root / "submitted" / student / COURSE
        (folder / "data").mkdir(parents=True)
        shutil.copy(release / "data" / "support_messages.csv", folder / "data")
        for name, nb in notebooks.items():
            nbformat.write(nb, folder / f"{name}.ipynb")
        for relative, text in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)

    submit("untouched", read, {})
    submit("solution", {n: nbformat.read(source / f"{n}.ipynb", as_version=4) for n in names}, {})
    for student, cheat in CHEATS.items():
        nb = copy.deepcopy(read[cheat.notebook])
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            cell.source = cheat.cells.get(gid, cell.source)
        submit(student, {cheat.notebook: nb}, cheat.files)
    students = ["untouched", "solution", *CHEATS]
    out: dict[str, object] = {}
    for label, text, env in (("before", base, env_before),
                             ("after", base + after, environment(work / "home-course-after", None))):
        config.write_text(text)
        seconds = run([str(BIN / "nbgrader"), "autograde", COURSE, "--force"], root, env)
        out[label] = {"seconds": seconds, "scores": course_scores(root, names, students)}
        print(f"  autograde {label}: {seconds:.0f} s", flush=True)
    out["kinds"] = {k: {"kind": c.kind, "notebook": c.notebook, "targets": list(c.targets)} for k, c in CHEATS.items()}
    return out


def points(scores: dict, student: str, notebook: str, targets: list[str]) -> float:
    got = scores.get(student, {}).get(notebook, {})
    return sum(got.get(t) or 0.0 for t in targets)


def report(times: dict, table: dict) -> str:
    import nbformat

    from gptlib.assignments.release import is_check_cell
    from tests.grading_cheats import CHEATS

    lines = ["Grading one honest submission (solution notebook), gptlib assignments grade --profile smoke:",
             f"{'assignment':28s} {'before s (min/median)':>22s} {'after s (min/median)':>22s} {'ratio (median)':>15s}"]
    ratios = []
    for name, t in times.items():
        b, a = t["before"], t["after"]
        ratio = statistics.median(a) / statistics.median(b)
        ratios.append(ratio)
        lines.append(f"{name:28s} {min(b):10.1f} /{statistics.median(b):6.1f}      {min(a):10.1f} /"
                     f"{statistics.median(a):6.1f}      {ratio:10.2f}x")
    total_b = sum(statistics.median(t["before"]) for t in times.values())
    total_a = sum(statistics.median(t["after"]) for t in times.values())
    lines.append(f"{'all five':28s} {total_b:18.1f}      {total_a:18.1f}      {total_a / total_b:10.2f}x"
                 f"   (target: no assignment over 1.50x; worst {max(ratios):.2f}x)")
    if table:
        before, after = table["before"]["scores"], table["after"]["scores"]
        possible = {}
        for path in sorted(SOURCE.glob("A0*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            possible[path.stem] = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
                                   for c in nb.cells if is_check_cell(c)}
        lines += ["", f"nbgrader autograde of the whole course: before {table['before']['seconds']:.0f} s, "
                      f"after {table['after']['seconds']:.0f} s", "",
                  f"{'cheat':26s} {'notebook':26s} {'aimed at':>8s} {'before':>7s} {'after':>6s}  kind"]
        sums = [0.0, 0.0, 0.0]
        for student, cheat in CHEATS.items():
            aim = sum(possible[cheat.notebook][t] for t in cheat.targets)
            b = points(before, student, cheat.notebook, list(cheat.targets))
            a = points(after, student, cheat.notebook, list(cheat.targets))
            sums = [sums[0] + aim, sums[1] + b, sums[2] + a]
            lines.append(f"{student:26s} {cheat.notebook:26s} {aim:8g} {b:7g} {a:6g}  {cheat.kind}")
        wins_b = sum(points(before, s, c.notebook, list(c.targets)) > 0 for s, c in CHEATS.items())
        wins_a = sum(points(after, s, c.notebook, list(c.targets)) > 0 for s, c in CHEATS.items())
        lines.append(f"{'all':26s} {'':26s} {sums[0]:8g} {sums[1]:7g} {sums[2]:6g}  kinds scoring: before "
                     f"{wins_b} of {len(CHEATS)}, after {wins_a}")
        for label, scores in (("before", before), ("after", after)):
            sol = sum(sum(v or 0 for v in nb.values()) for nb in scores["solution"].values())
            untouched = sum(sum(v or 0 for v in nb.values()) for nb in scores["untouched"].values())
            total = sum(sum(p.values()) for p in possible.values())
            lines.append(f"{label}: solutions {sol:g} / {total:g}, untouched release {untouched:g} / {total:g}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="45958e6", help="the commit graded as 'before' (default 45958e6)")
    parser.add_argument("--repeats", type=int, default=2, help="gradings of each honest notebook per side")
    parser.add_argument("--no-cheats", action="store_true", help="time the honest submissions only")
    parser.add_argument("--save", default=None, help="write the figures as JSON here, and the table beside it (.txt)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gptlib-grading-bench-"))
    before = work / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        print("timing honest submissions ...", flush=True)
        times = time_honest(work, before, args.repeats)
        table = {} if args.no_cheats else (print("autograding the cheats ...", flush=True) or cheats(work, before))
        text = report(times, table)
        print("\n" + text)
        if args.save:
            Path(args.save).write_text(json.dumps({"before": args.before, "times": times, "cheats": table}, indent=1))
            Path(args.save).with_suffix(".txt").write_text(text + "\n")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
