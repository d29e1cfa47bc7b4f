"""Grading outside the student's process (issue 21): the parts, one at a time.

The whole flow under nbgrader, with every kind of cheat, is in tests/test_nbgrader.py; here:
which check a locked cell runs, the safe reading of the kernel's answers, authorship, the
verdict as nbgrader scores it, the kernel's own checks under grading, fresh inputs, and the
time and memory limits of one question to a real kernel.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import gptlib.classifier as classifier
import gptlib.train as train
from gptlib.assignments import inputs
from gptlib.assignments.authorship import evasive, findings
from gptlib.assignments.channel import Unreadable, safe_load
from gptlib.assignments.judge import Verdict, parse_check
from gptlib.assignments.release import is_check_cell

nbformat = pytest.importorskip("nbformat")
ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "assignments"


def test_every_check_cell_names_one_check_of_its_assignment():
    import importlib

    seen = 0
    for path in sorted(SOURCE.glob("A0*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if not is_check_cell(cell):
                continue
            call = parse_check(cell.source)
            module = importlib.import_module(f"gptlib.assignments.{call.assignment}")
            assert call.assignment == path.stem[:3].lower() and call.check in module.__all__
            params = inspect.signature(getattr(module, call.check)).parameters
            assert len(call.args) <= len(params), (path.name, call)
            seen += 1
    assert seen == 28
    with pytest.raises(ValueError, match="not a check cell"):
        parse_check("print('OK')")


class Notebook(torch.nn.Module):  # stands for a class defined in a student's notebook
    def forward(self, x):
        return x


def notebook_hook(*args):  # stands for a function defined in a student's notebook
    return None


def test_answers_are_read_without_running_their_code(tmp_path):
    from gptlib.assignments.inputs import tiny_classifier

    good = tmp_path / "good.pt"
    torch.save({"value": tiny_classifier(), "x": (1.0, [2], "s", None)}, good)
    back = safe_load(good)
    assert type(back["value"]).__name__ == "GPTModel" and back["x"] == (1.0, [2], "s", None)
    bad = tmp_path / "bad.pt"
    torch.save({"value": Notebook()}, bad)
    with pytest.raises(Unreadable, match="Notebook"):
        safe_load(bad)
    model = tiny_classifier()
    model.register_forward_hook(notebook_hook)  # code of the notebook attached to a gptlib model
    torch.save({"value": model}, bad)
    with pytest.raises(Unreadable):
        safe_load(bad)


HONEST = '''
def last_real_positions(input_ids, pad_token_id=PAD_ID):
    positions = []
    for row in input_ids.tolist():
        last = 0
        for i, token in enumerate(row):
            if token != pad_token_id:
                last = i
        positions.append(last)
    return positions
'''


def test_authorship_flags_copies_wrappers_and_imports_not_honest_code():
    refs = (classifier.last_real_index,)
    assert findings([HONEST], "last_real_positions", refs) == []
    body = textwrap.dedent(inspect.getsource(classifier.last_real_index))
    renamed = body.replace("real =", "keep =").replace("(real,", "(keep,").replace("positions", "where").replace(
        "input_ids", "ids").replace("last_real_index", "last_real_positions")
    assert "keep" in renamed and "where =" in renamed
    assert any("names changed" in f for f in findings([renamed], "last_real_positions", refs))
    wrapper = "import gptlib.classifier as c\n\ndef last_real_positions(ids, pad=0):\n    return c.last_real_index(ids, pad)\n"
    assert any("calls the library's" in f for f in findings([wrapper], "last_real_positions", refs))
    imported = "from gptlib.classifier import last_real_index as last_real_positions\n"
    assert any("imported" in f for f in findings([imported], "last_real_positions", refs))
    rebound = HONEST + "\nlast_real_positions = something_else\n"
    assert any("assigned another object" in f for f in findings([rebound], "last_real_positions", refs))
    nested = "if True:\n    from gptlib.classifier import last_real_index as last_real_positions\n"
    assert findings([nested], "last_real_positions", refs)
    # the book's own function, retyped with other names, where the book's package is installed
    book = pytest.importorskip("llms_from_scratch.ch06")
    source = textwrap.dedent(inspect.getsource(book.calc_accuracy_loader)).replace("data_loader", "loader")
    assert any("names changed" in f for f in findings([source], "calc_accuracy_loader", (train.calc_accuracy_loader,)))


def test_code_no_task_needs_is_named():
    assert evasive([HONEST]) == []
    for text, what in [("get_ipython().input_transformers_cleanup.append(f)", "how the kernel runs cells"),
                       ("f.__code__ = g.__code__", "function's code"),
                       ("exec(text)", "from text"), ("import sys\nsys._getframe(1)", "reads the running code"),
                       ("getattr(mod, 'last_' + 'real')", "computed at run time"),
                       ("import threading", "beside the notebook"), ("sys.meta_path.insert(0, f)", "import system")]:
        assert any(what in f for f in evasive([text])), (text, evasive([text]))
    assert evasive(["re.compile('x')", "getattr(run, 'config')", "torch.compile(model)"]) == []


def test_the_verdict_is_what_nbgrader_scores():
    from nbgrader.utils import determine_grade

    cell = nbformat.v4.new_code_cell("checks.decay_shrink(decay_shrink)")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 2, "grade_id": "x", "locked": True}
    shown = nbformat.v4.new_output("execute_result", data={"text/plain": "<module>"}, execution_count=1)
    cell.outputs = [shown, nbformat.v4.new_output("error", ename="CheckFailed", evalue="no", traceback=[])]
    assert determine_grade(cell)[0] == 2, "nbgrader alone: a value shown before the error earns the points"
    cell.outputs = Verdict("x", False, "decay_shrink(...) returned 0.5").outputs()
    assert determine_grade(cell) == (0, 2) and cell.outputs[0].ename == "CheckFailed"
    cell.outputs = Verdict("x", True, "OK: right").outputs()
    assert determine_grade(cell) == (2, 2)


def test_in_a_grading_kernel_the_checks_decide_nothing():
    code = ("from gptlib.assignments.integrity import checks\n"
            "try:\n    checks('a02').decay_shrink(lambda lr, wd, steps: (1 - lr * wd) ** steps)\n"
            "except AssertionError as err:\n    print('FAILED', err)\n")
    env = {**os.environ, "GPTLIB_GRADING_PROFILE": "smoke"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300).stdout
    assert "FAILED" in out and "judged by the grader" in out
    for student in ({**env, "NBGRADER_EXECUTION": "validate"}, {k: v for k, v in env.items() if k != "GPTLIB_GRADING_PROFILE"}):
        out = subprocess.run([sys.executable, "-c", code], env=student, capture_output=True, text=True, timeout=300).stdout
        assert out.startswith("OK: decay_shrink is right"), out  # nbgrader validate, or the student's own run


def test_inputs_are_drawn_afresh_for_each_grading():
    try:
        fixed = inputs.tiny_model(seed=3).tok_emb.weight[0, :4].clone()
        assert torch.equal(fixed, inputs.tiny_model(seed=3).tok_emb.weight[0, :4]), "a student's run: the same"
        inputs.draw_fresh()
        first = inputs.tiny_model(seed=3).tok_emb.weight[0, :4].clone()
        inputs.draw_fresh()
        second = inputs.tiny_model(seed=3).tok_emb.weight[0, :4]
        assert not torch.equal(first, fixed) and not torch.equal(first, second)
        assert inputs.rng(2).random() != inputs.rng(3).random()
    finally:
        inputs._salt = 0


SLOW = "import time\n\n\ndef decay_shrink(lr, weight_decay, steps):\n    time.sleep(60)\n    return 0.5\n"
GREEDY = ("import time\n\nimport torch\n\n\ndef with_dropout(model, rate):\n"
          "    hog = torch.ones(700_000_000)\n    time.sleep(60)\n    return model\n")


@pytest.mark.slow
def test_limits_per_question_stop_the_kernel_with_a_clear_line(tmp_path):
    from gptlib.assignments.grade import grade_notebook
    from gptlib.assignments.release import build_student_versions

    build_student_versions(SOURCE, tmp_path / "release", solutions=False)
    path = tmp_path / "release" / "A02_overfitting.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell.source = {"a02_decay_shrink": SLOW, "a02_with_dropout": GREEDY}.get(gid, cell.source)
    nbformat.write(nb, path)
    report = grade_notebook(path, source=SOURCE / path.name, check_seconds=50, check_memory_mb=2000,
                            check_limits={"a02_decay_shrink_check": {"seconds": 4}})
    said = {c["grade_id"]: c["feedback"] for c in report.checks}
    assert "stopped after 4 s, the time limit your teacher set" in said["a02_decay_shrink_check"]
    assert "over the memory limit of 2,000 MiB" in said["a02_with_dropout_check"]
    assert report.score == 0


def test_the_grader_judges_under_its_own_profile_and_replay():
    from gptlib.assignments.profiles import graded_as, grading_profile_name, replay_mode

    with graded_as("smoke", "measure"):
        assert grading_profile_name() == "smoke" and replay_mode() == "measure"
        with graded_as("book"):
            assert grading_profile_name() == "book" and replay_mode() == "full"
    assert grading_profile_name() == (os.environ.get("GPTLIB_GRADING_PROFILE") or None)
