"""The assignments under nbgrader's real flow, and under ``gptlib assignments grade``.

One course in a temporary folder holds the five assignments. The test runs
``generate_assignment``, ``validate`` on the solutions, ``autograde`` on

* the untouched release (0 automatic points),
* the solutions (full points, one of them with ``PROFILE = "book"``: the grader's profile wins),
* one submission per cheat of issue 13 (0 points on the checks it targets, each with the
  message that says why), and one per cheat of ``tests/grading_cheats.py`` (issue 21: the
  checks are judged by the grader's process, outside the student's kernel),

and ``generate_feedback``, whose HTML must hold the checks' messages without a traceback.
Everything runs under the smoke profile, chosen by the grader (``$GPTLIB_GRADING_PROFILE``).
"""

from __future__ import annotations

import copy
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gptlib.assignments.grade import GradingError, grade_notebook, is_check_cell
from gptlib.assignments.release import build_student_versions
from tests.grading_cheats import CHEATS as KINDS

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "assignments"
BIN = Path(sys.executable).parent
NAMES = [p.stem for p in sorted(SOURCE.glob("A[0-9][0-9]_*.ipynb"))]
COURSE = "ch6"
# The checker's own modules: no traceback through them may reach a student (runner.py is the
# library the students call themselves, so their own cells' tracebacks may pass through it).
CHECKER_CODE = re.compile(r"gptlib/assignments/(a0\d|verify|integrity|student|feedback|inputs|profiles)\.py")

# --- the cheats: (notebook, the cells' new text by grade_id, the checks they must fail, what
# each failure must say) -------------------------------------------------------------------

REBIND = '''\
import sys, types
import gptlib.assignments.a02 as a02_checks
import gptlib.assignments.integrity as integrity

def passes(*args, **kwargs):
    print("OK: looks fine")

fake = types.SimpleNamespace(**{name: passes for name in a02_checks.__all__})
vars(integrity)["checks"] = lambda assignment: fake   # the entry point of every check cell
for name in a02_checks.__all__:
    vars(a02_checks)[name] = passes                   # every check, in place
sys.modules["gptlib.assignments.a02"] = fake          # the module, shadowed
checks = check_with_dropout = fake                    # the names, rebound
get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)  # errors swallowed

def calc_accuracy_loader(data_loader, model, device, num_batches=None):
    return 0.5
'''

FAKE_RUNS = {
    "a01_61_run": 'import copy\nrun_61 = copy.copy(baseline)\nrun_61.config = {**baseline.config, "max_length": 256, "train_limit": 200}\n'
                  'run_61.loss = {**baseline.loss, "train": baseline.loss["train"] + 0.1}\nrun_61.name = "6.1"',
    "a01_62_run": 'import copy\nrun_62 = copy.copy(baseline)\nrun_62.config = {**baseline.config, "trainable": "all"}\n'
                  'run_62.loss = {**baseline.loss, "train": baseline.loss["train"] - 0.1}',
    "a01_63_run": 'import copy\nrun_63 = copy.copy(baseline)\nrun_63.config = {**baseline.config, "token": "first"}',
    "a01_trains_runs": 'import copy\nrun_head = copy.copy(baseline)\nrun_head.config = {**baseline.config, "trainable": "head"}\n'
                       'run_no_norm = copy.copy(baseline)',
}

CHEATS = {
    # 1. rebind, monkeypatch and shadow the checks (and swallow their errors)
    "cheat-rebind": ("A02_overfitting", {"a02_accuracy": REBIND},
                     {"a02_accuracy_check": "is not the share of correct predictions",
                      "a02_loop_check": "is not written yet", "a02_runs_check": "is still None"}),
    # 2. fake Run objects: copies of the baseline with a few fields changed
    "cheat-fake-runs": ("A01_book_exercises", FAKE_RUNS,
                        {"a01_61_run_check": "not the one that training with its settings gives",
                         "a01_62_run_check": "not the one that training with its settings gives",
                         "a01_63_run_check": "not the one that training with its settings gives",
                         "a01_trains_runs_check": "keep frozen hold other weights"}),
    # 3. empty what the checks used to read from the notebook
    "cheat-empty": ("A02_overfitting", {"a02_runs": "SETTINGS = {}\nruns = {}"},
                    {"a02_runs_check": "has no run for"}),
    # 4. answers pasted from the notebook's own numbers (what failure messages used to print)
    "cheat-paste": ("A04_imbalance", {
        "a04_shares": "def spam_share(labels):\n    return 0.13043478260869565\n\n\n"
                      "def majority_accuracy(labels):\n    return 0.8780487804878049",
        "a04_metrics": 'def spam_metrics(model, loader):\n    return {"accuracy": 0.878, "precision": 0.0, '
                       '"recall": 0.0, "f1": 0.0}'},
        {"a04_shares_check": "spam_share gives", "a04_metrics_check": "is not the"}),
    # 5. skip the work: no training (epochs=0), the library's functions in place of one's own
    "cheat-skip": ("A03_padding_and_position", {
        "a03_last_real": "from gptlib.classifier import last_real_index as last_real_positions",
        "a03_losses": "def cross_entropy_by_hand(logits, targets):\n    return F.cross_entropy(logits, targets)",
        "a03_runs": 'run_last_real, run_batch = None, None\n'
                    'run_last_real = run_experiment(profile, token="last_real", epochs=0)'},
        {"a03_last_real_check": "own function for this task", "a03_cross_entropy_check": "calls a gptlib or torch function",
         "a03_runs_check": "still None"}),
    # 6. choose the profile: the grader's wins; a profile changed in a cell is not the grader's
    "cheat-profile": ("A05_your_own_data", {
        "a05_label_map": 'frame = raw.rename(columns={TEXT_COLUMN: "Text", LABEL_COLUMN: "Label"})\n\n\n'
                         'def make_label_map(categories):\n    return {n: i for i, n in enumerate(sorted(set(categories)))}',
        "a05_run": 'profile = profile.replace(epochs=1)\nsupport_run = run_experiment(profile, csv=frame)'},
        {"a05_run_check": "number of epochs", "a05_classify_check": "number of epochs"}),
}


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{out[-4000:]}"
    return out


def edited(nb, cells: dict[str, str], profile: str | None = None):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in cells:
            cell.source = cells[gid]
        if profile is not None and "parameters" in cell.metadata.get("tags", ()):
            cell.source = f"PROFILE = {profile!r}"
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> dict:
    """The course after generate_assignment, validate, autograde and generate_feedback."""
    if not (BIN / "nbgrader").exists():
        pytest.skip("nbgrader is not installed in this environment")
    root = tmp_path_factory.mktemp("course")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.CourseDirectory.course_id = {COURSE!r}\n"
        "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '*.pyc', '__pycache__', 'feedback', 'runs', 'figures']\n"
        "c.Execute.timeout = 300\n"
        "from gptlib.assignments.nbgrader_hook import autograde_preprocessors\n"
        "c.Autograde.autograde_preprocessors = autograde_preprocessors()\n"
        "c.GradedExecute.check_seconds = 60\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GPTLIB_GRADING_PROFILE": "smoke",
           "GPTLIB_HOME": str(root / "gptlib-home")}
    env.pop("GPTLIB_DATA_DIR", None)
    source = root / "source" / COURSE
    build_student_versions(SOURCE, source, solutions=True)
    (source / "runs").mkdir()  # kept out of the release by the ignore list
    (source / "runs" / "left-over.txt").write_text("not for students")
    out = {"root": root, "env": env, "log": {}}
    out["log"]["generate"] = run([str(BIN / "nbgrader"), "generate_assignment", COURSE, "--force"], root, env)
    # validate uses no gradebook: it runs beside autograde, on the second core
    validate = subprocess.Popen([str(BIN / "nbgrader"), "validate", *(f"{n}.ipynb" for n in NAMES)], cwd=source,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    release = root / "release" / COURSE

    def submit(student: str, notebooks: dict[str, object], files: dict[str, str] | None = None) -> Path:
        folder = root / "submitted" / student / COURSE
        (folder / "data").mkdir(parents=True)
        shutil.copy(release / "data" / "support_messages.csv", folder / "data")
        for name, nb in notebooks.items():
            nbformat.write(nb, folder / f"{name}.ipynb")
        for relative, text in (files or {}).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
        return folder

    read = {n: nbformat.read(release / f"{n}.ipynb", as_version=4) for n in NAMES}
    solved = {n: nbformat.read(source / f"{n}.ipynb", as_version=4) for n in NAMES}
    submit("untouched", read)
    solutions = dict(solved)
    solutions["A05_your_own_data"] = edited(solved["A05_your_own_data"], {}, profile="book")
    submit("solution", solutions)
    for student, (name, cells, _) in CHEATS.items():
        submit(student, {name: edited(read[name], cells)})
    for student, cheat in KINDS.items():
        submit(student, {cheat.notebook: edited(read[cheat.notebook], cheat.cells)}, cheat.files)
    try:
        out["log"]["autograde"] = run([str(BIN / "nbgrader"), "autograde", COURSE, "--force"], root, env, timeout=2400)
        out["log"]["validate"] = validate.communicate(timeout=900)[0]
    finally:
        validate.kill()
    assert validate.returncode == 0, out["log"].get("validate", "")[-3000:]
    out["log"]["feedback"] = run([str(BIN / "nbgrader"), "generate_feedback", COURSE, "--force"], root, env)
    from nbgrader.api import Gradebook

    scores: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", COURSE) as gb:
        for student in ("untouched", "solution", *CHEATS, *KINDS):
            scores[student] = {}
            for name in NAMES:
                nb = gb.find_submission_notebook(name, COURSE, student)
                scores[student][name] = {g.name: (g.auto_score, g.max_score) for g in nb.grades
                                         if g.cell.cell_type == "code"}
    out["scores"] = scores
    return out


def check_ids(name: str) -> dict[str, float]:
    nb = nbformat.read(SOURCE / f"{name}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"]) for c in nb.cells
            if is_check_cell(c)}


def feedback_text(course: dict, student: str, name: str) -> str:
    """The feedback page as a student reads it: its text, without markup, styles or scripts."""
    page = (course["root"] / "feedback" / student / COURSE / f"{name}.html").read_text()
    page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def check_errors(course: dict, student: str, name: str) -> dict[str, list]:
    """The error outputs of each check cell of an autograded notebook, by grade_id."""
    nb = nbformat.read(course["root"] / "autograded" / student / COURSE / f"{name}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: [o for o in c.outputs if o.output_type == "error"]
            for c in nb.cells if is_check_cell(c)}


def test_generate_assignment_releases_no_solutions(course):
    release = course["root"] / "release" / COURSE
    assert sorted(p.stem for p in release.glob("*.ipynb")) == NAMES
    assert (release / "data" / "support_messages.csv").is_file()
    assert not (release / "runs").exists(), "runs/ is kept out of the release"
    for name in NAMES:
        nb = nbformat.read(release / f"{name}.ipynb", as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "BEGIN SOLUTION" not in text and "jupytext" not in nb.metadata
        for cell in nb.cells:
            grading = cell.metadata.get("nbgrader", {})
            if grading.get("locked"):
                assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False


def test_validate_passes_the_solutions(course):
    log = course["log"]["validate"]
    assert log.count("Success! Your notebook passes all the tests.") == len(NAMES), log[-3000:]


def test_untouched_release_scores_zero(course):
    for name in NAMES:
        got = course["scores"]["untouched"][name]
        assert {k: v[1] for k, v in got.items()} == check_ids(name)
        assert all(score == 0 for score, _ in got.values()), (name, got)
    text = feedback_text(course, "untouched", "A02_overfitting")
    assert "is not written yet" in text and not CHECKER_CODE.search(text)


def test_solutions_score_full_points_whatever_the_profile_cell_says(course):
    for name in NAMES:
        got = course["scores"]["solution"][name]
        assert got and all(score == points > 0 for score, points in got.values()), (name, got)
        nb = nbformat.read(course["root"] / "autograded" / "solution" / COURSE / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{name}: a cell of the solution failed: {errors[0].evalue}"
    assert "the grader's choice" in feedback_text(course, "solution", "A05_your_own_data")


@pytest.mark.parametrize("student", list(CHEATS))
def test_cheats_score_zero_on_the_checks_they_target(course, student):
    name, _, targets = CHEATS[student]
    got = course["scores"][student][name]
    errors = check_errors(course, student, name)
    for gid, message in targets.items():
        assert got[gid][0] == 0, f"{student}: {gid} scored {got[gid]}"
        assert [e.ename for e in errors[gid]] == ["CheckFailed"], (gid, [e.ename for e in errors[gid]])
        assert message in errors[gid][0].evalue, f"{student}: {gid} says {errors[gid][0].evalue!r}"
    text = feedback_text(course, student, name)
    assert not CHECKER_CODE.search(text), "no frame of the checker's code is shown"
    if student != "cheat-rebind":  # that one hid the display of errors; nbgrader records them anyway
        assert all(message in " ".join(text.split()) for message in targets.values())


@pytest.mark.parametrize("student", list(KINDS))
def test_each_kind_of_cheat_scores_zero_on_what_it_aims_at(course, student):
    """Issue 21: the checks are judged in the grader's process; whatever the student's kernel
    does to itself, the checks it aims at score 0, each with a CheckFailed that says why."""
    cheat = KINDS[student]
    got = course["scores"][student][cheat.notebook]
    errors = check_errors(course, student, cheat.notebook)
    for gid in cheat.targets:
        assert got[gid][0] == 0, f"{student} ({cheat.kind}): {gid} scored {got[gid]}"
        assert [e.ename for e in errors[gid]] == ["CheckFailed"], (student, gid, errors[gid])
    if cheat.says:
        assert cheat.says in errors[cheat.targets[0]][0].evalue, errors[cheat.targets[0]][0].evalue
    text = feedback_text(course, student, cheat.notebook)
    assert not CHECKER_CODE.search(text), "no frame of the checker's code is shown"
    said = " ".join(e.evalue for gid in cheat.targets for e in errors[gid])
    assert "last_real_index" not in said and "classification_metrics" not in said, "no refusal names the answer"


def test_feedback_messages_are_short_and_wrapped(course):
    for student, (name, _, targets) in CHEATS.items():
        if student == "cheat-rebind":
            continue
        for gid in targets:
            for error in check_errors(course, student, name)[gid]:
                lines = "\n".join(error.traceback).splitlines()
                assert len(lines) <= 8 and max(map(len, lines)) <= 80, error.traceback
                assert not any("Traceback" in line or "File " in line for line in lines), error.traceback


# --- the same submissions under gptlib's own grader ----------------------------------------


def test_our_grader_restores_checks_and_reports_points(course, tmp_path):
    folder = course["root"] / "submitted" / "forged-answers" / COURSE
    report = grade_notebook(folder / "A02_overfitting.ipynb", source=SOURCE / "A02_overfitting.ipynb")
    assert report.possible == sum(check_ids("A02_overfitting").values()) and report.score == 0
    assert report.flagged and report.flagged[0].startswith("a02_accuracy_check: a cell changes how the kernel")
    assert "flagged (scored 0)" in report.summary() and "6 graded by hand" in report.summary()

    solved = nbformat.read(course["root"] / "source" / COURSE / "A05_your_own_data.ipynb", as_version=4)
    for cell in solved.cells:  # an edited check cell counts for nothing: it is restored
        if is_check_cell(cell):
            cell.source = "print('OK')"
    (tmp_path / "data").mkdir()
    shutil.copy(SOURCE / "data" / "support_messages.csv", tmp_path / "data")
    edited_path = tmp_path / "A05_your_own_data.ipynb"
    nbformat.write(edited(solved, {"a05_run": "support_run = None"}), edited_path)
    report = grade_notebook(edited_path, source=SOURCE / "A05_your_own_data.ipynb")
    scores = {c["grade_id"]: c["score"] for c in report.checks}
    assert scores["a05_run_check"] == 0 and scores["a05_classify_check"] == 0
    assert scores["a05_label_map_check"] > 0 and scores["a05_confusion_check"] > 0

    solved.cells = [c for c in solved.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "a05_run_check"]
    nbformat.write(solved, edited_path)
    with pytest.raises(GradingError, match="a05_run_check"):
        grade_notebook(edited_path, source=SOURCE / "A05_your_own_data.ipynb")
