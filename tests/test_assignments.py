"""The classroom assignments (notebooks/assignments/) and gptlib.assignments.

* Student versions: built from the solution notebooks, they hold no solution text, keep
  every check cell, and, executed under the smoke profile, every check cell fails with its
  feedback (a placeholder can never pass a check).
* The pairs (.py / .ipynb) are in sync and follow the chapter notebooks' conventions.
* The check functions accept right answers and reject wrong ones with specific feedback.

Running the solution notebooks themselves is nbval's job:
``GPTLIB_PROFILE=smoke .venv/bin/python -m pytest --nbval-lax notebooks/assignments/``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from gptlib import assignments as asg
from gptlib.classifier import add_classification_head
from gptlib.cli import main as cli_main
from gptlib.data import SpamDataset, create_data_loaders, prepare_spam_splits
from gptlib.notebook import load_base_model, load_profile, smoke_data_file

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "assignments"
IPYNBS = sorted(SOURCE.glob("A[0-9][0-9]_*.ipynb"))
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def read(path: Path):
    return nbformat.read(path, as_version=4)


def is_check_cell(cell) -> bool:
    grading = cell.metadata.get("nbgrader", {})
    return bool(cell.cell_type == "code" and grading.get("grade") and not grading.get("solution"))


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    asg.build_student_versions(SOURCE, out)
    return out


# --- the files -----------------------------------------------------------------------------


def test_there_are_five_assignments_with_scripts():
    assert [p.name[:3] for p in IPYNBS] == ["A01", "A02", "A03", "A04", "A05"]
    for ipynb in IPYNBS:
        assert ipynb.with_suffix(".py").is_file(), f"{ipynb.name} has no paired .py script"
    assert (SOURCE / "data" / "support_messages.csv").is_file()
    assert (SOURCE / "README.md").is_file()


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
    assert len(tagged) == 1 and "load_profile" in tagged[0].source
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.execution_count is None, f"cell {i}: execution counts are not stored"
            assert bool(cell.outputs) == (CHECK_MARK in cell.source), f"cell {i}: outputs only for checked cells"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_solution_and_check_cells_are_marked_for_nbgrader(ipynb: Path):
    nb = read(ipynb)
    ids = []
    solutions = checks = 0
    for cell in nb.cells:
        grading = cell.metadata.get("nbgrader")
        regions = asg.solution_regions(cell.source)
        if regions:
            assert grading and grading["solution"], f"cell with a solution region lacks nbgrader metadata:\n{cell.source}"
            solutions += 1
        if grading:
            assert grading["schema_version"] == 3
            ids.append(grading["grade_id"])
            if grading["solution"]:
                assert regions, f"solution cell {grading['grade_id']} has no BEGIN/END SOLUTION markers"
        if is_check_cell(cell):
            checks += 1
            assert grading["locked"] and grading["points"] > 0
            assert "check_" in cell.source, f"check cell {grading['grade_id']} calls no check function"
    assert len(ids) == len(set(ids)), "grade_ids must be unique within a notebook"
    assert solutions >= 3 and checks >= 3


# --- student versions ----------------------------------------------------------------------


def test_student_versions_are_built_with_data(student_dir: Path):
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in IPYNBS]
    data = student_dir / "data" / "support_messages.csv"
    assert data.read_bytes() == (SOURCE / "data" / "support_messages.csv").read_bytes()
    assert not list(student_dir.glob("**/*.part")), "no temporary files are left behind"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_no_solution_text_survives(ipynb: Path, student_dir: Path):
    source = read(ipynb)
    student = read(student_dir / ipynb.name)
    outside = set()
    inside = set()
    for cell in source.cells:
        lines = cell.source.splitlines()
        in_region = {i for b, e in asg.solution_regions(cell.source) for i in range(b, e + 1)}
        outside |= {lines[i].strip() for i in range(len(lines)) if i not in in_region}
        inside |= {line.strip() for line in asg.solution_lines(cell.source)}
    secret = {line for line in inside - outside if line and line not in ("#",)}
    assert secret, "the notebook should have solution lines to hide"
    text = "\n".join(c.source for c in student.cells)
    student_lines = {line.strip() for line in text.splitlines()}
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    leaked = sorted(secret & student_lines)
    assert not leaked, f"solution lines survive in the student version: {leaked[:5]}"
    assert student.metadata.get("jupytext") is None
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_student_version_keeps_everything_else(ipynb: Path, student_dir: Path):
    source, student = read(ipynb), read(student_dir / ipynb.name)
    assert len(source.cells) == len(student.cells)
    for a, b in zip(source.cells, student.cells):
        assert a.cell_type == b.cell_type and a.metadata.get("nbgrader") == b.metadata.get("nbgrader")
        if asg.solution_regions(a.source):
            placeholder = "raise NotImplementedError()" if a.cell_type == "code" else "YOUR ANSWER HERE"
            assert b.source.count(placeholder) == len(asg.solution_regions(a.source))
        else:
            assert a.source == b.source  # check cells and given code are untouched


@pytest.mark.slow
@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_placeholders_fail_every_check(ipynb: Path, student_dir: Path, monkeypatch):
    """Run the student version: each check cell must stop with its feedback, not pass."""
    pytest.importorskip("nbclient")
    monkeypatch.delenv("GPTLIB_DATA_DIR", raising=False)
    results = asg.grade_notebook(student_dir / ipynb.name, profile="smoke", timeout=300)
    assert len(results) == sum(is_check_cell(c) for c in read(ipynb).cells)
    for result in results:
        gid, feedback = result["grade_id"], result["feedback"]
        assert result["score"] == 0, f"check {gid} passed on the untouched student version"
        assert feedback.startswith("AssertionError: "), f"check {gid} failed with {feedback}"
        assert len(feedback) > 40, f"check {gid} gives no feedback: {feedback!r}"


@pytest.mark.slow
def test_grading_the_solution_gives_full_points(tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    monkeypatch.delenv("GPTLIB_DATA_DIR", raising=False)
    solution = tmp_path / "A05_your_own_data.ipynb"
    solution.write_bytes((SOURCE / solution.name).read_bytes())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "support_messages.csv").write_bytes((SOURCE / "data" / "support_messages.csv").read_bytes())
    results = asg.grade_notebook(solution, timeout=300)
    assert results and all(r["score"] == r["points"] > 0 for r in results), results


def test_strip_solutions_keeps_code_around_markers_and_indentation():
    source = "x = None\ndef f(a):\n    ### BEGIN SOLUTION\n    return a + 1\n    ### END SOLUTION\nprint(x)"
    assert asg.strip_solutions(source) == (
        "x = None\ndef f(a):\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(x)")
    md = "Your answer:\n\n### BEGIN SOLUTION\nbecause\n### END SOLUTION"
    assert asg.strip_solutions(md, "markdown") == "Your answer:\n\nYOUR ANSWER HERE"
    for bad in ("### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"):
        with pytest.raises(ValueError, match="SOLUTION"):
            asg.solution_regions(bad)


def test_solution_cell_without_markers_is_replaced_whole():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("answer = 42", metadata={"nbgrader": {"solution": True}}),
                nbformat.v4.new_markdown_cell("An essay.", metadata={"nbgrader": {"solution": True}}),
                nbformat.v4.new_code_cell("check(answer)")]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="OK")]
    student = asg.student_notebook(nb)
    assert student.cells[0].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert student.cells[1].source == "YOUR ANSWER HERE"
    assert student.cells[2].source == "check(answer)" and student.cells[2].outputs == []
    assert nb.cells[0].source == "answer = 42", "the source notebook is not changed"


def test_cli_builds_and_refuses_to_overwrite_the_solutions(tmp_path, capsys):
    assert cli_main(["assignments", "build", str(tmp_path / "out"), "--source", str(SOURCE)]) == 0
    assert (tmp_path / "out" / "A01_book_exercises.ipynb").is_file()
    assert "A05_your_own_data.ipynb" in capsys.readouterr().out
    assert cli_main(["assignments", "build", str(SOURCE / "student")]) == 2
    assert "source folder" in capsys.readouterr().err
    assert not (SOURCE / "student").exists()
    assert cli_main(["assignments", "build", str(tmp_path / "x"), "--source", str(tmp_path)]) == 2


def test_default_source_is_found_from_the_checkout():
    assert asg.default_source_dir() == SOURCE


def test_importing_assignments_does_not_import_ipywidgets():
    code = "import sys, gptlib.assignments\nassert 'ipywidgets' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


# --- the check functions: right answers pass, wrong ones get specific feedback -------------


def fails(check, *args, match: str, **kwargs) -> str:
    with pytest.raises(AssertionError, match=match) as info:
        check(*args, **kwargs)
    return str(info.value)


def test_decay_shrink_check():
    asg.check_decay_shrink(lambda lr, wd, steps: (1 - lr * wd) ** steps)
    fails(asg.check_decay_shrink, lambda lr, wd, steps: 1 - lr * wd * steps, match="compounds")
    fails(asg.check_decay_shrink, lambda lr, wd, steps: (1 - wd) ** steps, match="learning rate")
    fails(asg.check_decay_shrink, None, match="still None")

    def placeholder(lr, wd, steps):
        raise NotImplementedError()

    fails(asg.check_decay_shrink, placeholder, match="not written yet")


def test_last_real_positions_check():
    asg.check_last_real_positions(lambda ids, pad: (ids != pad).sum(1) - 1)
    fails(asg.check_last_real_positions, lambda ids, pad: torch.full((ids.shape[0],), ids.shape[1] - 1),
          match="last position, which is a pad token")
    fails(asg.check_last_real_positions, lambda ids, pad: (ids != pad).sum(1), match="first pad position")
    fails(asg.check_last_real_positions, lambda ids, pad: (ids != 50256).sum(1) - 1, match="pad_token_id")
    fails(asg.check_last_real_positions, lambda ids, pad: (ids != pad).sum(1)[:1] - 1, match="one position per row")


def test_precision_recall_f1_check():
    def right(preds, labels, positive=1):
        return asg._prf(preds, labels, positive)

    asg.check_precision_recall_f1(right)
    fails(asg.check_precision_recall_f1, lambda p, y, positive=1: right(p, y, positive)[1::-1] + (right(p, y, positive)[2],),
          match="swapped")

    def mean_not_harmonic(p, y, positive=1):
        precision, recall, _ = right(p, y, positive)
        return precision, recall, (precision + recall) / 2

    fails(asg.check_precision_recall_f1, mean_not_harmonic, match="harmonic")

    def divides_by_zero(p, y, positive=1):
        tp = sum(a == positive and b == positive for a, b in zip(p, y))
        precision = tp / sum(a == positive for a in p)
        recall = tp / sum(b == positive for b in y)
        return precision, recall, 2 * precision * recall / (precision + recall)

    fails(asg.check_precision_recall_f1, divides_by_zero, match="divides by zero")
    fails(asg.check_precision_recall_f1, lambda p, y, positive=1: right(p, y, 1), match="positive")


def test_share_and_majority_checks():
    df = pd.DataFrame({"Label": [0, 0, 0, 1], "Text": list("abcd")})
    asg.check_spam_share(0.25, df)
    fails(asg.check_spam_share, 25.0, df, match="not a percentage")
    fails(asg.check_spam_share, 0.75, df, match="'not spam'")
    fails(asg.check_spam_share, None, df, match="still None")
    asg.check_majority_accuracy(0.75, df)
    fails(asg.check_majority_accuracy, 0.25, df, match="majority class")


def test_label_map_check():
    categories = ["tech", "billing", "other", "tech"]
    asg.check_label_map({"billing": 0, "other": 1, "tech": 2}, categories)
    fails(asg.check_label_map, {"billing": 0, "tech": 1}, categories, match=r"missing \['other'\]")
    fails(asg.check_label_map, {"billing": 1, "other": 2, "tech": 3}, categories, match="0 .. 2")
    fails(asg.check_label_map, ["billing"], categories, match="should be a dict")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The smoke profile's tiny model and data, and a few short runs made with it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    profile = load_profile("smoke").replace(epochs=2, lr=1e-3, data_file=smoke_data_file())
    tokenizer = asg._tokenizer()
    csvs = prepare_spam_splits(smoke_data_file(), tmp_path_factory.mktemp("splits"))

    def loaders(**kw):
        train = SpamDataset(csvs[0], tokenizer, **kw)
        kw["max_length"] = kw.get("max_length") or train.max_length
        rest = [SpamDataset(c, tokenizer, **kw) for c in csvs[1:]]
        return create_data_loaders(train, *rest, batch_size=profile.batch_size, seed=profile.seed)

    base = load_base_model(profile)
    book = loaders()
    out = {"profile": profile, "base": base, "loaders": book, "context_loaders": loaders(max_length=256),
           "batch_loaders": loaders(padding="batch")}

    def run(name, model=None, data=book, **kw):
        return asg.run_experiment(model or add_classification_head(base), data, profile, name=name,
                                  progress=False, **kw)

    out["baseline"] = run("baseline")
    out["run_61"] = run("6.1", data=out["context_loaders"])
    out["run_62"] = run("6.2", model=add_classification_head(base, trainable="all"))
    out["run_63"] = run("6.3", token="first")
    out["last_real"] = run("last real", token="last_real")
    out["batch"] = run("batch", data=out["batch_loaders"], token="last_real")
    yield out
    torch.set_num_threads(before)


def test_head_checks(tiny):
    base = tiny["base"]
    asg.check_all_layers_trainable(add_classification_head(base, trainable="all"), base)
    message = fails(asg.check_all_layers_trainable, copy.deepcopy(base), base, match="maps 64 to 50257 outputs")
    assert "it should map 64 to 2" in message and "language model's head" in message
    fails(asg.check_all_layers_trainable, add_classification_head(base), base, match="only .* trainable")
    fails(asg.check_all_layers_trainable, base, base, match="base_model itself")
    fails(asg.check_support_head, add_classification_head(base), base, {"a": 0, "b": 1, "c": 2},
          match="maps 64 to 2 outputs; it should map 64 to 3")
    asg.check_support_head(add_classification_head(base, num_classes=3), base, {"a": 0, "b": 1, "c": 2})


def test_exercise_checks(tiny):
    base, baseline = tiny["base"], tiny["baseline"]
    asg.check_padded_to_context(tiny["context_loaders"], base, baseline_loaders=tiny["loaders"])
    fails(asg.check_padded_to_context, tiny["loaders"], base, match=f"padded to {baseline.max_length} tokens.*256")
    fails(asg.check_padded_to_context, tiny["loaders"][:2], base, match="train, validation, test")
    asg.check_exercise_61(tiny["run_61"], baseline, base)
    fails(asg.check_exercise_61, baseline, baseline, base, match="train it on `loaders_61`")
    asg.check_exercise_62(tiny["run_62"], baseline, base)
    fails(asg.check_exercise_62, baseline, baseline, base, match="trained .* of .* parameters")
    asg.check_exercise_63(tiny["run_63"], baseline)
    fails(asg.check_exercise_63, baseline, baseline, match="token='first'")
    fails(asg.check_exercise_63, "run", baseline, match="should be what run_experiment")


def test_exercise_61_direction_is_checked(tiny):
    fake = copy.copy(tiny["run_61"])
    fake.loss = {**fake.loss, "train": tiny["baseline"].loss["train"] - 0.01}
    fails(asg.check_exercise_61, fake, tiny["baseline"], tiny["base"], match="fit worse")
    fake.data_file = None  # smoke profile on the real data: the tiny model is no reliable judge
    asg.check_exercise_61(fake, tiny["baseline"], tiny["base"])
    fake.profile = "book"  # the real model: the direction is required
    fails(asg.check_exercise_61, fake, tiny["baseline"], tiny["base"], match="fit worse")


def test_position_checks(tiny):
    baseline = tiny["baseline"]
    asg.check_batch_padding(tiny["batch_loaders"])
    fails(asg.check_batch_padding, tiny["loaders"], match="padding='batch'")
    asg.check_position_runs(baseline, tiny["last_real"], tiny["batch"])
    fails(asg.check_position_runs, baseline, tiny["run_63"], tiny["batch"], match="token='last_real'")
    fails(asg.check_position_runs, baseline, tiny["last_real"], tiny["last_real"], match="train it on `batch_loaders`")
    ds = tiny["loaders"][0].dataset
    share = sum(int(ids[-1]) == 50256 for ids, _ in ds) / len(ds)
    asg.check_pad_share(share, ds)
    fails(asg.check_pad_share, 1 - share, ds, match="ends with a real token")


def test_regularisation_checks(tiny):
    profile, base = tiny["profile"], tiny["base"]

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

    def only_embeddings(model, rate):
        out = copy.deepcopy(model)
        out.drop_emb.p = rate
        return out

    asg.check_with_dropout(with_dropout, base)
    fails(asg.check_with_dropout, only_embeddings, base, match="dropout layers at other rates")
    fails(asg.check_with_dropout, in_place, copy.deepcopy(base), match="work on a copy")

    settings = {"book": (0.0, 0.1), "dropout": (0.3, 0.1), "decay": (0.0, 10.0)}
    runs = {name: asg.run_experiment(add_classification_head(with_dropout(base, d)), tiny["loaders"], profile,
                                     weight_decay=w, name=name, progress=False)
            for name, (d, w) in settings.items()}
    asg.check_regularisation_runs(runs, settings)
    fails(asg.check_regularisation_runs, {**runs, "dropout": runs["book"]}, settings, match="Build its classifier")
    fails(asg.check_regularisation_runs, {"book": runs["book"]}, settings, match="no run for")

    acc = {n: r.accuracy["train"] - r.accuracy["validation"] for n, r in runs.items()}
    loss = {n: r.loss["validation"] - r.loss["train"] for n, r in runs.items()}
    asg.check_gaps(acc, loss, runs)
    flipped = {n: -v for n, v in acc.items()}
    if any(v for v in acc.values()):
        fails(asg.check_gaps, flipped, loss, runs, match="sign is reversed")
    fails(asg.check_gaps, acc, {n: -v for n, v in loss.items()}, runs, match="sign is reversed")
    best = {n: r.eval_freq * min(range(len(r.val_losses)), key=r.val_losses.__getitem__) for n, r in runs.items()}
    asg.check_best_steps(best, runs)
    index = {n: v // runs[n].eval_freq for n, v in best.items()}
    if index != best:
        fails(asg.check_best_steps, index, runs, match="index of the evaluation")


def test_metric_checks(tiny):
    run = tiny["run_62"]
    loader = run.loaders[2]
    preds, labels = asg.collect_predictions(loader, run.model)
    precision, recall, f1 = asg._prf(preds, labels)
    right = {"accuracy": sum(p == y for p, y in zip(preds, labels)) / len(labels),
             "precision": precision, "recall": recall, "f1": f1}
    asg.check_spam_metrics(right, run, loader)
    fails(asg.check_spam_metrics, {**right, "accuracy": 100 * right["accuracy"]}, run, loader,
          match="not percentages")
    fails(asg.check_spam_metrics, {"accuracy": right["accuracy"]}, run, loader, match="has no 'precision'")

    confusion = [[0, 0], [0, 0]]
    for y, p in zip(labels, preds):
        confusion[y][p] += 1
    label_map = {"ham": 0, "spam": 1}
    asg.check_confusion(confusion, run, label_map)
    asg.check_confusion(torch.tensor(confusion), run, label_map)
    transposed = [list(r) for r in zip(*confusion)]
    if transposed != confusion:
        fails(asg.check_confusion, transposed, run, label_map, match="transposed")
    fails(asg.check_confusion, [[1, 2, 3]], run, label_map, match="should be 2 x 2")


def test_support_checks(tiny):
    frame = pd.DataFrame({"Text": ["pay bill", "app broken", "hello there", "refund please",
                                   "crash on start", "office hours", "invoice copy", "login fails",
                                   "thanks a lot", "card declined"],
                          "Label": ["billing", "tech", "other", "billing", "tech", "other", "billing",
                                    "tech", "other", "billing"]})
    label_map = {"billing": 0, "other": 1, "tech": 2}
    tokenizer = asg._tokenizer()
    train, val, test = frame.iloc[:6], frame.iloc[6:8], frame.iloc[8:]
    datasets = [SpamDataset(part, tokenizer, max_length=8, label_map=label_map) for part in (train, val, test)]
    loaders = create_data_loaders(*datasets, batch_size=2)
    asg.check_support_data(frame, loaders, label_map)
    fails(asg.check_support_data, frame.rename(columns={"Text": "message"}), loaders, label_map, match="rename")
    wrong = {"billing": 2, "other": 1, "tech": 0}
    fails(asg.check_support_data, frame, loaders, wrong, match="label_map gives")
    fails(asg.check_support_data, frame.iloc[:9], loaders, label_map, match="not in `frame`")
