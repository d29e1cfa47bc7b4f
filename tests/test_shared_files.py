"""What gptlib writes follows the umask (as open() and mkdir() do), so that on a shared machine
or a JupyterHub a class can read the release, the runs and the plots it is handed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gptlib.support import files


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                            (0o002, 0o664, 0o775)])
def test_atomic_files_and_folders_follow_the_umask(umask, file_mode, folder_mode, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "UMASK", umask)
    written = files.atomic_write_bytes(tmp_path / "metrics.json", b"{}")
    assert stat.S_IMODE(written.stat().st_mode) == file_mode
    with files.atomic_folder(tmp_path / "run") as staging:
        (staging / "plot.png").write_bytes(b"png")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == folder_mode


def test_a_run_written_by_the_command_line_is_readable_by_others(small_tsv, tmp_path, offline, monkeypatch,
                                                                  one_thread):
    from gptlib.cli import main

    monkeypatch.setattr(files, "UMASK", 0o022)
    out = tmp_path / "run"
    before = os.umask(0o022)  # the process's own, for the folders a run makes with mkdir
    try:
        assert main(["finetune", "--model-size", "gpt2-tiny (test)", "--weights", "random", "--data",
                     str(small_tsv), "--epochs", "1", "--output", str(out), "--no-progress"]) == 0
    finally:
        os.umask(before)
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes["."] == 0o755 and modes["classifier.pth"] == modes["metrics.json"] == 0o644
    assert all(mode & 0o044 == 0o044 for mode in modes.values()), modes  # group and others may read


def test_grading_several_students_reports_each_and_writes_a_gradebook_csv(tmp_path, capsys, monkeypatch):
    """`assignments grade` over a class: a block per student, a total per student (never one sum
    over everyone), and a CSV a gradebook or an LMS can load; nbgrader's folder layout too."""
    import csv

    from gptlib.assignments import grade
    from gptlib.assignments.cli import student_of
    from gptlib.cli import main

    scores = {"alice": 7.0, "bob": 3.0, "carol": 0.0}

    def fake_grade(path, **kwargs):  # the scoring itself is tested with nbgrader; here, the report
        who = student_of(path)
        return grade.GradeReport(notebook=Path(path).name, checks=[
            {"grade_id": "a01_head", "score": scores[who], "points": 7.0, "feedback": ""}],
            suspicious=["cell 3: sys.meta_path"] if who == "bob" else [])

    monkeypatch.setattr(grade, "grade_notebook", fake_grade)
    paths = [tmp_path / "alice" / "A01_book_exercises.ipynb",
             tmp_path / "submitted" / "bob" / "A01" / "A01_book_exercises.ipynb",
             tmp_path / "carol" / "A01_book_exercises" / "A01_book_exercises.ipynb"]
    out = tmp_path / "grades.csv"
    assert main(["assignments", "grade", *map(str, paths), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== alice ==" in printed and "bob: 3 / 7 automatic points in 1 notebook(s)" in printed
    assert "total:" not in printed
    rows = list(csv.DictReader(out.open()))
    assert [(r["student"], r["assignment"], float(r["score"]), float(r["possible"])) for r in rows] == [
        ("alice", "A01_book_exercises", 7.0, 7.0), ("bob", "A01_book_exercises", 3.0, 7.0),
        ("carol", "A01_book_exercises", 0.0, 7.0)]
    assert rows[1]["look at"] == "cell 3: sys.meta_path"
