"""The classroom assignments (notebooks/assignments/) and the gptlib.assignments package.

* The notebooks: pairs in sync, nbgrader metadata on every teacher cell (locked, read-only),
  check cells that import the checks afresh.
* The release: no solution text, no jupytext metadata, data and a README, nothing else.
* The guards: checks that cannot be rebound, monkeypatched or shadowed; student functions
  that may not be (or call) the library's reference; runs verified by training them again.
* The checks: right answers pass, wrong ones get specific feedback that never shows the
  expected value.

Running the notebooks (under nbgrader and gptlib's grader) is tests/test_nbgrader.py.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from gptlib.assignments import integrity
from gptlib.assignments.grade import GradingError, is_check_cell, restore_cells, suspicious_code
from gptlib.assignments.release import (
    build_student_versions,
    default_source_dir,
    solution_lines,
    solution_regions,
    strip_solutions,
    student_notebook,
)
from gptlib.cli import main as cli_main

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "assignments"
IPYNBS = sorted(SOURCE.glob("A[0-9][0-9]_*.ipynb"))
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
CHECK_HEAD = ("import sys\nsys.modules.pop(\"gptlib.assignments.integrity\", None)  # the checks, imported afresh\n"
              "from gptlib.assignments.integrity import checks\n")


def read(path: Path):
    return nbformat.read(path, as_version=4)


def fresh(name: str):
    """The checks of one assignment, as a check cell gets them; this test module counts as
    the notebook (its functions are the "student's")."""
    module = integrity.checks(name)
    sys.modules["gptlib.assignments.student"].NOTEBOOK_MODULES.add(__name__)
    return module


def fails(check, *args, match: str, **kwargs) -> str:
    with pytest.raises(AssertionError, match=match) as info:
        check(*args, **kwargs)
    return str(info.value)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- the notebooks -------------------------------------------------------------------------


def test_there_are_five_assignments_with_scripts_and_a_guide():
    assert [p.name[:3] for p in IPYNBS] == ["A01", "A02", "A03", "A04", "A05"]
    for ipynb in IPYNBS:
        assert ipynb.with_suffix(".py").is_file(), f"{ipynb.name} has no paired .py script"
    assert (SOURCE / "data" / "support_messages.csv").is_file()
    guide = (SOURCE / "README.md").read_text()
    for ipynb in IPYNBS:
        assert ipynb.stem in guide
    for idea in ("examples_seen", "log-softmax", "final norm", "instruction"):
        assert idea in guide, f"the teacher's guide does not map {idea!r}"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_pair_in_sync_and_conventions(ipynb: Path):
    jupytext = pytest.importorskip("jupytext")

    def cells(path):
        return [(c.cell_type, c.source.strip(), c.metadata.get("nbgrader"), tuple(c.metadata.get("tags", ())))
                for c in jupytext.read(path).cells]

    assert cells(ipynb) == cells(ipynb.with_suffix(".py")), (
        f"{ipynb.name} and its .py differ; run `.venv/bin/python notebooks/build.py {ipynb.stem}`")
    nb = read(ipynb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", ())]
    assert len(tagged) == 1
    code = [line for line in tagged[0].source.splitlines() if line.strip() and not line.startswith("#")]
    assert code == ["PROFILE = None"], "the parameters cell only chooses the student's own profile"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.execution_count is None or CHECK_MARK in cell.source, f"cell {i}: no execution counts"
            assert bool(cell.outputs) == (CHECK_MARK in cell.source), f"cell {i}: outputs only for checked cells"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_every_teacher_cell_is_locked_and_every_check_imports_the_checks_afresh(ipynb: Path):
    nb = read(ipynb)
    key = ipynb.name[:3].lower()
    checks = fresh(key)
    ids, solutions, graded = [], 0, 0
    for cell in nb.cells:
        grading = cell.metadata.get("nbgrader")
        if "parameters" in cell.metadata.get("tags", ()):
            assert grading is None
            continue
        assert grading, f"a cell without nbgrader metadata:\n{cell.source[:200]}"
        assert grading["schema_version"] == 3
        ids.append(grading["grade_id"])
        regions = solution_regions(cell.source)
        if grading["solution"]:
            assert regions and not grading["locked"], f"{grading['grade_id']}: a solution cell with markers"
            solutions += 1
        else:
            assert not regions and grading["locked"], f"{grading['grade_id']}: a teacher cell is locked"
            assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False
        if is_check_cell(cell):
            graded += 1
            assert grading["points"] > 0
            assert cell.source.startswith(CHECK_HEAD + f'checks = checks("{key}")\n'), grading["grade_id"]
            called = cell.source.splitlines()[-1].split("(")[0].removeprefix("checks.")
            assert called in checks.__all__, f"{grading['grade_id']} calls an unknown check {called}"
    assert len(ids) == len(set(ids)), "grade_ids must be unique within a notebook"
    assert solutions >= 4 and graded >= 4


def test_a02_settings_are_the_checks():
    source = (SOURCE / "A02_overfitting.py").read_text()
    a02 = fresh("a02")
    namespace: dict = {}
    exec(source[source.index("SETTINGS = {"):source.index("}\n", source.index("SETTINGS = {")) + 2], namespace)
    assert namespace["SETTINGS"] == a02.SETTINGS
    assert f"TRAIN_MESSAGES = {a02.TRAIN_MESSAGES}" in source


def _points(ipynb: Path) -> tuple[float, float, list[str]]:
    """(automatic points, manual points, the manual answers' grade_ids) of a notebook."""
    auto, manual, answers = 0.0, 0.0, []
    for cell in read(ipynb).cells:
        grading = cell.metadata.get("nbgrader") or {}
        if not grading.get("grade"):
            continue
        if is_check_cell(cell):
            auto += grading["points"]
        else:
            manual += grading["points"]
            answers.append(grading["grade_id"])
    return auto, manual, answers


def test_the_guide_has_the_points_a_rubric_and_expected_results_for_every_assignment():
    guide = (SOURCE / "README.md").read_text()
    for ipynb in IPYNBS:
        auto, manual, answers = _points(ipynb)
        row = next(line for line in guide.splitlines() if line.startswith(f"| `{ipynb.stem}`"))
        assert row.endswith(f"| {auto:g} / {manual:g} |"), f"the guide's points for {ipynb.stem} are not the notebook's"
        assert f"| {ipynb.name[:3]} |" in guide and f"{auto:g} + {manual:g} = {auto + manual:g}" in guide
        assert f"**{ipynb.name[:3]}**" in guide[guide.index("## Rubrics"):], f"no rubric for {ipynb.stem}"
        assert answers, ipynb.stem
    for heading in ("## Expected results", "## Rubrics", "not measured here", "Wilson", "python -m gptlib.assignments.expected"):
        assert heading in guide
    assert "±0.0" not in guide and "+-0.0" not in guide


def test_no_task_text_gives_its_code_and_the_profile_cells_offer_offline():
    a03 = (SOURCE / "A03_padding_and_position.py").read_text()
    task = a03[a03.index("## Task 4"):a03.index("def cross_entropy_by_hand")]
    assert "nll_loss(torch.softmax" not in task and "logits[:, 1] - logits[:, 0]" not in task
    for script in sorted(SOURCE.glob("A0*.py")):
        text = script.read_text()
        assert '"offline"' in text[text.index("# %% tags=[\"parameters\"]"):], script.name
        assert "five chapter notebooks" not in text, script.name


def test_wilson_intervals_are_never_zero_wide():
    from gptlib.assignments.expected import share, wilson

    for k, n in ((0, 10), (10, 10), (285, 300), (1, 1)):
        low, high = wilson(k, n)
        assert 0 <= low < high <= 1 and low <= k / n <= high
    assert share(285, 300) == {"pct": 95.0, "wilson95": [91.9, 96.9], "n": 300}


def test_exercise_61_runs_on_few_messages_and_prints_the_lesson():
    from gptlib.assignments.a01 import EXERCISE_61_MESSAGES, _pad_facts

    assert EXERCISE_61_MESSAGES <= 200
    rows = [(torch.tensor([5, 6, 50256, 50256]), 0), (torch.tensor([5, 6, 7, 50256]), 1)]
    assert _pad_facts(rows) == (1.0, 1.5)


# --- the release ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for path in SOURCE.glob("A0*.ipynb"):
        (source / path.name).write_bytes(path.read_bytes())
    (source / "data" / "runs").mkdir(parents=True)
    (source / "data" / "support_messages.csv").write_bytes((SOURCE / "data" / "support_messages.csv").read_bytes())
    (source / "data" / "runs" / "old.txt").write_text("a run's output")
    out = tmp_path_factory.mktemp("release")
    build_student_versions(source, out)
    return out


def test_release_holds_notebooks_data_and_a_readme_only(release: Path):
    files = sorted(str(p.relative_to(release)) for p in release.rglob("*") if p.is_file())
    assert files == sorted([p.name for p in IPYNBS] + ["README.md", "data/support_messages.csv"])


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_release_leaks_no_solution_and_no_jupytext(ipynb: Path, release: Path):
    source, student = read(ipynb), read(release / ipynb.name)
    outside, inside = set(), set()
    for cell in source.cells:
        lines = cell.source.splitlines()
        region = {i for b, e in solution_regions(cell.source) for i in range(b, e + 1)}
        outside |= {lines[i].strip() for i in range(len(lines)) if i not in region}
        inside |= {line.strip() for line in solution_lines(cell.source)}
    secret = {line for line in inside - outside if line and line != "#"}
    text = "\n".join(c.source for c in student.cells)
    assert secret and "BEGIN SOLUTION" not in text
    leaked = sorted(secret & {line.strip() for line in text.splitlines()})
    assert not leaked, f"solution lines survive in the release: {leaked[:5]}"
    assert "jupytext" not in student.metadata
    assert len(source.cells) == len(student.cells)
    for a, b in zip(source.cells, student.cells):
        assert "lines_to_next_cell" not in b.metadata
        assert a.metadata.get("nbgrader") == b.metadata.get("nbgrader")
        if b.cell_type == "code":
            assert b.outputs == [] and b.execution_count is None
        if not solution_regions(a.source):
            assert a.source == b.source  # checks and given code are untouched


def test_nbgrader_source_keeps_the_solutions(tmp_path):
    written = build_student_versions(SOURCE, tmp_path, solutions=True)
    assert not (tmp_path / "README.md").exists() and (tmp_path / "data" / "support_messages.csv") in written
    nb = read(tmp_path / "A02_overfitting.ipynb")
    assert "jupytext" not in nb.metadata and "BEGIN SOLUTION" in "\n".join(c.source for c in nb.cells)


def test_strip_solutions_keeps_code_around_markers_and_indentation():
    source = "x = None\ndef f(a):\n    ### BEGIN SOLUTION\n    return a + 1\n    ### END SOLUTION\nprint(x)"
    assert strip_solutions(source) == "x = None\ndef f(a):\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(x)"
    assert strip_solutions("Answer:\n\n### BEGIN SOLUTION\nbecause\n### END SOLUTION", "markdown") == \
        "Answer:\n\nYOUR ANSWER HERE"
    for bad in ("### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"):
        with pytest.raises(ValueError, match="SOLUTION"):
            solution_regions(bad)


def test_solution_cell_without_markers_is_replaced_whole():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("answer = 42", metadata={"nbgrader": {"solution": True}}),
                nbformat.v4.new_markdown_cell("An essay.", metadata={"nbgrader": {"solution": True}})]
    student = student_notebook(nb)
    assert student.cells[0].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert student.cells[1].source == "YOUR ANSWER HERE" and nb.cells[0].source == "answer = 42"


def test_cli_builds_and_refuses_to_overwrite_the_solutions(tmp_path, capsys):
    from gptlib.assignments.cli import add_assignments_parser

    parser = argparse.ArgumentParser()
    add_assignments_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["assignments", "build", str(tmp_path / "out"), "--source", str(SOURCE)])
    assert args.handler(args) == 0 and (tmp_path / "out" / "README.md").is_file()
    args = parser.parse_args(["assignments", "grade", "x.ipynb", "--profile", "book", "--replay", "measure"])
    assert (args.profile, args.replay, args.notebooks) == ("book", "measure", ["x.ipynb"])
    # today's gptlib.cli still builds through the package
    assert cli_main(["assignments", "build", str(tmp_path / "cli"), "--source", str(SOURCE)]) == 0
    assert "A05_your_own_data.ipynb" in capsys.readouterr().out
    assert cli_main(["assignments", "build", str(SOURCE / "student")]) == 2
    assert "source folder" in capsys.readouterr().err and not (SOURCE / "student").exists()


def test_default_source_is_found_from_the_checkout():
    assert default_source_dir() == SOURCE


def test_importing_gptlib_and_the_assignments_imports_no_widgets():
    code = ("import sys, gptlib, gptlib.assignments, gptlib.assignments.a01, gptlib.assignments.grade\n"
            "assert 'ipywidgets' not in sys.modules\nprint(gptlib.assignments.run_experiment.__module__)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "gptlib.assignments.runner"


def test_package_modules_stay_small():
    for path in (ROOT / "gptlib" / "assignments").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 450, path.name


# --- feedback and guards -------------------------------------------------------------------


def test_a_failed_check_shows_a_short_wrapped_message_without_traceback():
    from gptlib.assignments.feedback import CheckFailed, fail

    with pytest.raises(CheckFailed) as info:
        fail("word " * 60)
    lines = info.value._render_traceback_()
    assert lines[0].startswith("Check failed: word") and all(len(line) <= 80 for line in lines)
    assert not any("Traceback" in line or ".py" in line for line in lines)


def test_numbers_of_a_students_own_class_are_refused():
    from gptlib.assignments.feedback import number, plain_tensor

    class Always(float):
        def __eq__(self, other):
            return True

    assert number(torch.tensor(0.5), "x") == 0.5
    fails(number, Always(0.1), "x", match="should be a number")
    fails(plain_tensor, torch.nn.Parameter(torch.ones(1)), "x", match="should be a torch tensor")


def test_checks_are_fresh_and_read_only(monkeypatch):
    a02 = fresh("a02")
    with pytest.raises(AttributeError, match="read-only"):
        a02.with_dropout = lambda *a: None
    monkeypatch.setitem(sys.modules, "gptlib.assignments.a02", SimpleNamespace(with_dropout=print))
    again = fresh("a02")
    assert again is not a02 and again.__file__.endswith("a02.py")


@pytest.mark.parametrize("where", ["gptlib.train", "torch", "importlib", "a02 dict", "sys.modules"])
def test_tampering_is_found(monkeypatch, where):
    import importlib

    import gptlib.train

    fake = lambda *args, **kwargs: None  # noqa: E731  (what a student's cell would write)
    if where == "gptlib.train":
        monkeypatch.setattr(gptlib.train, "calc_accuracy_loader", fake)
    elif where == "torch":
        monkeypatch.setattr(torch, "equal", fake)
    elif where == "importlib":
        monkeypatch.setattr(importlib, "reload", fake)
    elif where == "a02 dict":
        monkeypatch.setitem(vars(fresh("a02")), "with_dropout", fake)
    else:
        monkeypatch.setitem(sys.modules, "gptlib.fake", SimpleNamespace())
    found = integrity.tampering()
    assert found, where
    fails(integrity.verify, match="replaced parts of gptlib")


def test_tampering_clean():
    import gptlib.finetune  # noqa: F401
    import gptlib.lab  # noqa: F401

    assert integrity.tampering() == []


def test_student_functions_may_not_be_or_call_the_reference():
    import gptlib.classifier
    from gptlib.classifier import last_real_index

    a03 = fresh("a03")
    fails(a03.last_real_positions, last_real_index, match="gptlib's own")
    fails(a03.last_real_positions, lambda ids, pad: gptlib.classifier.last_real_index(ids, pad),
          match="calls a gptlib or torch function")

    def through_name(ids, pad):
        return last_real_index(ids, pad)

    def through_default(ids, pad, helper=last_real_index):
        return helper(ids, pad)

    fails(a03.last_real_positions, through_name, match="calls a gptlib or torch function")
    fails(a03.last_real_positions, through_default, match="calls a gptlib or torch function")
    fails(a03.last_real_positions, copy.deepcopy, match="define it with `def`")
    assert gptlib.classifier.last_real_index is last_real_index, "the reference is put back"

    def placeholder(ids, pad):
        raise NotImplementedError()

    def buggy(ids, pad):
        return ids.nonexistent

    fails(a03.last_real_positions, placeholder, match="not written yet")
    fails(a03.last_real_positions, buggy, match="raised AttributeError")
    fails(a03.cross_entropy_by_hand, lambda z, y: F.cross_entropy(z, y),
          match="calls a gptlib or torch function")


def test_a_students_function_that_tampers_while_called_is_caught():
    import gptlib.train

    a04 = fresh("a04")
    original = gptlib.train.classification_metrics

    def spam_share(labels):
        gptlib.train.classification_metrics = lambda *a, **k: None
        return sum(labels) / len(labels)

    try:
        fails(a04.shares, spam_share, lambda labels: labels.count(0) / len(labels), match="replaced parts")
    finally:
        gptlib.train.classification_metrics = original


def test_the_graders_profile_wins(monkeypatch, capsys):
    profiles = sys.modules["gptlib.assignments.profiles"]
    monkeypatch.setitem(vars(profiles), "started_environ", lambda: {"GPTLIB_GRADING_PROFILE": "smoke"})
    monkeypatch.setenv("GPTLIB_PROFILE", "book")
    assert profiles.setup("A01", "book").name == "smoke"
    assert "the grader's choice" in capsys.readouterr().out
    assert profiles.active_profile("A03").name == "smoke"
    monkeypatch.setitem(vars(profiles), "started_environ", lambda: {"GPTLIB_GRADING_PROFILE": "mine"})
    with pytest.raises(ValueError, match="use one of"):
        profiles.grading_profile_name()


def test_profiles_keep_runs_out_of_the_notebook_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path))
    fresh("a01")
    profile = sys.modules["gptlib.assignments.profiles"].assignment_profile("A05", "book")
    assert profile.work_dir.is_relative_to(tmp_path) and profile.epochs == 10


# --- our grader: cells restored by grade_id ------------------------------------------------


def _tiny_notebook():
    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.cells = [
        v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "given", "locked": True, "grade": False,
                                                         "solution": False}}),
        v4.new_code_cell("y = None\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION",
                         metadata={"nbgrader": {"grade_id": "answer", "locked": False, "grade": False,
                                                "solution": True}}),
        v4.new_code_cell("assert y == 2", metadata={"nbgrader": {"grade_id": "check", "locked": True, "grade": True,
                                                                 "solution": False, "points": 2}}),
    ]
    return nb


def test_restore_cells_takes_teacher_cells_from_the_source():
    source = _tiny_notebook()
    sub = copy.deepcopy(source)
    sub.cells[1].source = "import sys; sys.modules.clear(); y = 3"
    sub.cells[2].source = "pass"
    sub.cells[2].metadata["nbgrader"]["points"] = 100
    sub.cells.append(nbformat.v4.new_code_cell("z = 3", metadata={"nbgrader": {"grade_id": "mine", "grade": True}}))
    out = restore_cells(sub, source)
    assert [c.source for c in out.cells][:3] == ["x = 1", sub.cells[1].source, "assert y == 2"]
    assert out.cells[2].metadata["nbgrader"]["points"] == 2 and "nbgrader" not in out.cells[3].metadata
    assert suspicious_code(out) == ["answer: sys.modules"]
    deleted = copy.deepcopy(source)
    del deleted.cells[2]
    with pytest.raises(GradingError, match="check"):
        restore_cells(deleted, source)
    twice = copy.deepcopy(source)
    twice.cells.append(copy.deepcopy(twice.cells[2]))
    with pytest.raises(GradingError, match="more than once"):
        restore_cells(twice, source)


# --- the checks: right answers pass, wrong ones say what is wrong --------------------------


def make_classifier(model, num_classes=2):
    clf = copy.deepcopy(model)
    for p in clf.parameters():
        p.requires_grad = False
    clf.out_head = torch.nn.Linear(clf.tok_emb.weight.shape[1], num_classes)
    for part in (clf.trf_blocks[-1], clf.final_norm):
        for p in part.parameters():
            p.requires_grad = True
    return clf


def test_head_swap_check():
    a01 = fresh("a01")
    a01.make_classifier(make_classifier)

    def hard_coded(model, num_classes=2):
        clf = make_classifier(model, num_classes)
        clf.out_head = torch.nn.Linear(768, num_classes)
        return clf

    def no_norm(model, num_classes=2):
        clf = make_classifier(model, num_classes)
        for p in clf.final_norm.parameters():
            p.requires_grad = False
        return clf

    def in_place(model, num_classes=2):
        for p in model.parameters():
            p.requires_grad = False
        model.out_head = torch.nn.Linear(model.tok_emb.weight.shape[1], num_classes)
        return model

    def two_outputs(model, num_classes=2):
        return make_classifier(model, 2)

    fails(a01.make_classifier, hard_coded, match="read the width from the model")
    fails(a01.make_classifier, no_norm, match="the final norm is frozen")
    fails(a01.make_classifier, in_place, match="work on a copy")
    fails(a01.make_classifier, two_outputs, match="use the num_classes argument")
    from gptlib.classifier import add_classification_head

    fails(a01.make_classifier, lambda m, n=2: add_classification_head(m, n), match="calls a gptlib or torch function")


def test_small_function_checks_of_a01_and_a02():
    a01, a02 = fresh("a01"), fresh("a02")
    a01.context_length(lambda model: model.pos_emb.weight.shape[0])
    message = fails(a01.context_length, lambda model: 1024, match="not its context length")
    assert "96" not in message
    fails(a01.context_length, lambda model: model.tok_emb.weight.shape[1], match="embedding width")

    def freeze(model):
        for p in model.final_norm.parameters():
            p.requires_grad = False

    a01.freeze_final_norm(freeze)
    fails(a01.freeze_final_norm, lambda m: m, match="still trains")
    a02.decay_shrink(lambda lr, wd, steps: (1 - lr * wd) ** steps)
    message = fails(a02.decay_shrink, lambda lr, wd, steps: 1 - lr * wd * steps, match="compounds")
    assert "0.996755" not in message, "the expected value is never shown"
    fails(a02.decay_shrink, lambda lr, wd, steps: (1 - wd) ** steps, match="learning rate")
    a02.train_val_gaps(lambda r: (r.accuracy["train"] - r.accuracy["validation"], r.loss["validation"] - r.loss["train"]))
    fails(a02.train_val_gaps, lambda r: (r.accuracy["validation"] - r.accuracy["train"], 0.0), match="sign is reversed")
    fails(a02.train_val_gaps, lambda r: (r.train_accs[-1] - r.val_accs[-1], r.loss["validation"] - r.loss["train"]),
          match="last point of the curves")
    a02.best_step(lambda v, f: f * min(range(len(v)), key=v.__getitem__))
    fails(a02.best_step, lambda v, f: min(range(len(v)), key=v.__getitem__), match="index of the evaluation")


def calc_accuracy_loader(data_loader, model, device, num_batches=None):
    model.eval()
    correct = total = 0
    n = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    for i, (x, y) in enumerate(data_loader):
        if i >= n:
            break
        with torch.no_grad():
            correct += (model(x)[:, -1, :].argmax(-1) == y).sum().item()
        total += len(y)
    return correct / total


def test_accuracy_and_loop_checks():
    from gptlib.train import calc_loss_batch

    a02 = fresh("a02")
    a02.calc_accuracy_loader(calc_accuracy_loader)

    def no_eval(data_loader, model, device, num_batches=None):
        correct = total = 0
        for i, (x, y) in enumerate(data_loader):
            if num_batches is not None and i >= num_batches:
                break
            with torch.no_grad():
                correct += (model(x)[:, -1, :].argmax(-1) == y).sum().item()
            total += len(y)
        return correct / total

    fails(a02.calc_accuracy_loader, no_eval, match="model.eval")
    fails(a02.calc_accuracy_loader, lambda d, m, dev, n=None: calc_accuracy_loader(d, m, dev), match="num_batches")

    def loop(model, train_loader, val_loader, optimizer, device, num_epochs, eval_iter=None, count=None):
        train_accs, val_accs, seen = [], [], 0
        for _ in range(num_epochs):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                calc_loss_batch(x, y, model, device).backward()
                optimizer.step()
                seen += count(x) if count else x.shape[0]
            train_accs.append(calc_accuracy_loader(train_loader, model, device, eval_iter))
            val_accs.append(calc_accuracy_loader(val_loader, model, device, eval_iter))
        return train_accs, val_accs, seen

    a02.train_epochs(loop)
    fails(a02.train_epochs, lambda *a: loop(*a, count=lambda x: 1), match="not batches")
    fails(a02.train_epochs, lambda *a: loop(*a, count=lambda x: x.numel()), match="not tokens")

    def no_zero_grad(model, train_loader, val_loader, optimizer, device, num_epochs, eval_iter=None):
        optimizer.zero_grad = lambda *a, **k: None
        return loop(model, train_loader, val_loader, optimizer, device, num_epochs, eval_iter)

    fails(a02.train_epochs, no_zero_grad, match="not as the book's loop does")


def test_dropout_and_a03_function_checks():
    a02, a03 = fresh("a02"), fresh("a03")

    def with_dropout(model, rate):
        out = copy.deepcopy(model)
        for m in out.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = rate
        return out

    def in_place(model, rate):
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = rate
        return model

    a02.with_dropout(with_dropout)
    fails(a02.with_dropout, in_place, match="work on a copy")
    pad = 50256

    def share(ds, p=pad):
        return sum(int(ds[i][0][-1]) == p for i in range(len(ds))) / len(ds)

    a03.pad_share(share)
    message = fails(a03.pad_share, lambda ds, p=pad: 1 - share(ds, p), match="ends with a real token")
    assert "0.9" not in message.split("pad_share is")[1][6:], message
    a03.last_real_positions(lambda ids, p: ((ids != p).sum(1) - 1).clamp(min=0))
    fails(a03.last_real_positions, lambda ids, p: (ids != pad).sum(1) - 1, match="pad_token_id")
    fails(a03.last_real_positions, lambda ids, p: (ids != p).sum(1), match="first pad position")
    a03.cross_entropy_by_hand(lambda z, y: -torch.log_softmax(z, -1).gather(1, y.unsqueeze(1)).mean())
    fails(a03.cross_entropy_by_hand, lambda z, y: -torch.log_softmax(z, -1).gather(1, y.unsqueeze(1)).sum(),
          match="sum over the rows")
    fails(a03.cross_entropy_by_hand, lambda z, y: torch.tensor(F.cross_entropy(z, y).item()), match="calls a gptlib or torch function")
    a03.nll_of_softmax(lambda z, y: F.nll_loss(torch.softmax(z, -1), y))
    a03.one_logit_loss(lambda z, y: torch.nn.BCEWithLogitsLoss()(z[:, 1] - z[:, 0], y.float()))
    fails(a03.one_logit_loss, lambda z, y: torch.nn.BCEWithLogitsLoss()(z[:, 0] - z[:, 1], y.float()),
          match="column 1 minus column 0")


def test_a04_and_a05_function_checks():
    from gptlib.assignments.runner import collect_predictions

    a04, a05 = fresh("a04"), fresh("a05")
    a04.shares(lambda labels: sum(labels) / len(labels), lambda labels: labels.count(0) / len(labels))
    fails(a04.shares, lambda labels: 0.13, lambda labels: 0.87, match="spam_share gives")
    fails(a04.shares, lambda labels: 100 * sum(labels) / len(labels), lambda labels: 0.0, match="percentage")

    def prf(p, y, positive=1):
        tp = sum(a == positive and b == positive for a, b in zip(p, y))
        pp, ap = sum(a == positive for a in p), sum(b == positive for b in y)
        pr, rc = (tp / pp if pp else 0.0), (tp / ap if ap else 0.0)
        return pr, rc, (2 * pr * rc / (pr + rc) if pr + rc else 0.0)

    a04.precision_recall_f1(prf)
    fails(a04.precision_recall_f1, lambda p, y, positive=1: prf(p, y, positive)[1::-1] + (prf(p, y, positive)[2],),
          match="swapped")

    def divides(p, y, positive=1):
        tp = sum(a == positive and b == positive for a, b in zip(p, y))
        precision, recall = tp / sum(a == positive for a in p), tp / sum(b == positive for b in y)
        return precision, recall, 2 * precision * recall / (precision + recall)

    fails(a04.precision_recall_f1, divides, match="divides by zero")

    def metrics(model, loader):
        p, y = collect_predictions(loader, model)
        pr, rc, f1 = prf(p, y)
        return {"accuracy": sum(a == b for a, b in zip(p, y)) / len(y), "precision": pr, "recall": rc, "f1": f1}

    a04.spam_metrics(metrics)
    fails(a04.spam_metrics, lambda m, lo: {k: 100 * v for k, v in metrics(m, lo).items()}, match="not percentages")
    a05.make_label_map(lambda cats: {n: i for i, n in enumerate(sorted(set(cats)))})
    fails(a05.make_label_map, lambda cats: {n: i for i, n in enumerate(dict.fromkeys(cats))}, match="sort them")

    def confusion(p, y, k):
        m = [[0] * k for _ in range(k)]
        for a, b in zip(y, p):
            m[a][b] += 1
        return m

    a05.confusion_matrix(confusion)
    fails(a05.confusion_matrix, lambda p, y, k: [list(r) for r in zip(*confusion(p, y, k))], match="transposed")


# --- runs: verified by training them again -------------------------------------------------


@pytest.fixture(scope="module")
def runs():
    from gptlib.assignments.profiles import assignment_profile
    from gptlib.assignments.runner import run_experiment

    torch.set_num_threads(1)
    profile = assignment_profile("A01", "smoke")
    out = {"profile": profile, "baseline": run_experiment(profile, name="baseline", quiet=True),
           "first": run_experiment(profile, token="first", quiet=True)}
    return out


def test_runs_are_verified_not_trusted(runs):
    from gptlib.finetune import build_model
    from gptlib.settings import FinetuneConfig

    a01 = fresh("a01")
    base = runs["baseline"]
    a01.run_63(runs["first"], base)
    message = fails(a01.run_63, base, base, match="token read 'last'")
    assert "'first'" not in message, "the message does not give the answer away"
    fake = copy.copy(base)
    fake.config = {**base.config, "token": "first"}
    fails(a01.run_63, fake, base, match="not the one that training with its settings gives")
    untrained = copy.copy(runs["first"])
    untrained.model = build_model(FinetuneConfig.from_dict(untrained.config), torch.device("cpu"), progress=False)
    fails(a01.run_63, untrained, base, match="training did not happen")
    fails(a01.run_63, "run", base, match="should be what run_experiment")
    fails(a01.run_63, None, base, match="still None")
    other_seed = copy.copy(runs["first"])
    other_seed.config = {**other_seed.config, "seed": 7}
    fails(a01.run_63, other_seed, base, match="not the grading profile's")


def test_measure_mode_checks_the_numbers(runs, monkeypatch):
    fresh("a01")
    verify = sys.modules["gptlib.assignments.verify"]
    monkeypatch.setitem(vars(verify), "replay_mode", lambda: "measure")
    run = runs["first"]
    checked = verify.verified_run(run, "run_63", runs["profile"], {"token": "first"})
    assert checked.accuracy == pytest.approx(run.accuracy)
    lied = copy.copy(run)
    lied.loss = {**run.loss, "train": run.loss["train"] - 0.05}
    fails(verify.verified_run, lied, "run_63", runs["profile"], {"token": "first"}, match="changed after training")


def test_run_experiment_takes_every_finetune_setting(runs):
    from gptlib.assignments.runner import compare_runs, run_experiment
    from gptlib.settings import PRESETS

    fast = run_experiment(runs["profile"], **PRESETS["fast"], quiet=True)
    assert fast.config["speed"] == "fast" and fast.config["token"] == "last_real"
    table = compare_runs({"baseline": runs["baseline"], "fast": fast}).round(3)
    assert table["train acc %"].dtype.kind == "f"
    with pytest.raises(ValueError, match="Unknown setting"):
        run_experiment(runs["profile"], not_a_setting=1)
    a01 = fresh("a01")
    fails(a01.run_61, fast, runs["baseline"], match="speed='fast'")
