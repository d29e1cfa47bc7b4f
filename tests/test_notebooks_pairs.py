"""The chapter notebooks: each .ipynb has its jupytext .py twin with the same cells, a
``parameters`` cell, and is stored executed as a document (the assignments: outputs only
where nbval checks them); the notebook helper module stays free of ipywidgets at import time.

Executing the notebooks is nbval's job (``pytest --nbval-lax notebooks/``), not this file's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
IPYNBS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SCRIPTS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def cells(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(type, source, tags) of every cell, as jupytext reads the file."""
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_there_are_notebooks():
    assert IPYNBS, f"no chapter notebooks found in {NOTEBOOKS}"
    assert [p.stem for p in IPYNBS] == [p.stem for p in SCRIPTS], (
        "every notebooks/NN_*.ipynb needs a paired NN_*.py and vice versa; "
        "run `.venv/bin/python notebooks/build.py`"
    )


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_pair_is_in_sync(ipynb: Path):
    script = ipynb.with_suffix(".py")
    assert script.exists(), f"{script.name} is missing; run `.venv/bin/python notebooks/build.py`"
    assert cells(ipynb) == cells(script), (
        f"{ipynb.name} and {script.name} differ; edit the .py and run "
        f"`.venv/bin/python notebooks/build.py {script.name}`"
    )


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_one_parameters_cell_after_a_markdown_header(ipynb: Path):
    nb_cells = cells(ipynb)
    assert nb_cells[0][0] == "markdown" and nb_cells[0][1].startswith("# "), "first cell: a markdown title"
    tagged = [c for c in nb_cells if "parameters" in c[2]]
    assert len(tagged) == 1 and tagged[0][0] == "code", "exactly one code cell tagged 'parameters'"
    assert "load_profile" in tagged[0][1], "the parameters cell chooses the profile with load_profile()"


def committed_text(path: Path) -> str:
    """The file as git's index holds it (what a commit takes), else as it is on disk.

    JupyterLab autosaves a notebook you open, outputs and all, into your working copy; that
    is your copy's business (``notebooks/build.py`` restores it), and must not fail the suite.
    What this guards is what gets committed; on a clean clone (CI) the two are the same."""
    rel = path.relative_to(ROOT).as_posix()
    try:
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f":{rel}"], capture_output=True, text=True,
                               timeout=60)
    except (OSError, subprocess.SubprocessError):
        return path.read_text(encoding="utf-8")
    return shown.stdout if shown.returncode == 0 else path.read_text(encoding="utf-8")


DOCUMENT_PROFILES = ("offline", "book")  # what `notebooks/build.py --execute PROFILE` stores
SHOWS_SOMETHING = ("show_source", "display", "profile_banner")


def _shows_something(source: str) -> bool:
    """Whether a cell calls something that displays (a source listing, a plot, a banner)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    names = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
             for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return any(n in SHOWS_SOMETHING or n.startswith("plot_") for n in names)


def _text_of(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return str(data.get("text/markdown", "")) + str(data.get("text/plain", "")) + str(data.get("text/html", ""))


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_committed_as_a_document(ipynb: Path):
    """Stored executed (``build.py --execute offline``): a reader who runs nothing sees the
    sources, plots and tables; the profile is recorded, and the banner names it."""
    import nbformat

    nb = nbformat.reads(committed_text(ipynb), as_version=4)
    profile = nb.metadata.get("gptlib", {}).get("profile")
    assert profile in DOCUMENT_PROFILES, (
        f"{ipynb.name} is not stored as a document (profile {profile!r}); run "
        f"`.venv/bin/python notebooks/build.py --execute offline {ipynb.stem}`")
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        if CHECK_MARK in cell.source:  # nbval skips a reference cell without an execution count
            assert cell.outputs and cell.execution_count is not None, f"code cell {i}: checked, with no output"
        if _shows_something(cell.source):
            assert cell.outputs, f"code cell {i} shows something but has no stored output:\n{cell.source[:200]}"
        assert not any(o.get("output_type") == "error" for o in cell.outputs), f"code cell {i} stored an error"
    if any(_shows_something(c.source) and "plot_" in c.source for c in code):
        assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "no plot is stored"
    banner = next((c for c in code if "profile_banner(profile)" in c.source), None)
    assert banner is not None, "the parameters cell ends with profile_banner(profile)"
    assert f"Profile `{profile}`" in "".join(_text_of(o) for o in banner.outputs), "the banner names the profile"


ASSIGNMENTS = sorted((NOTEBOOKS / "assignments").glob("A[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("ipynb", ASSIGNMENTS, ids=lambda p: p.stem)
def test_assignments_store_only_checked_outputs(ipynb: Path):
    """Releases go to students without outputs: only the cells nbval checks keep theirs."""
    import nbformat

    nb = nbformat.reads(committed_text(ipynb), as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and CHECK_MARK not in cell.source:
            assert not cell.outputs and cell.execution_count is None, f"cell {i}: an unchecked output is stored"


def test_notebook_helpers_do_not_import_ipywidgets():
    code = (
        "import sys, gptlib.notebook\n"
        "assert 'ipywidgets' not in sys.modules, 'gptlib.notebook imported ipywidgets'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


MACHINE_PATH = re.compile(r"(?<![\w.~$])/(?:home|root|tmp|work|Users|var|private|mnt|opt|srv)/")


@pytest.mark.parametrize("ipynb", IPYNBS + ASSIGNMENTS, ids=lambda p: p.stem)
def test_no_machine_path_is_stored(ipynb: Path):
    """A stored document names paths as a reader's checkout has them (relative to the
    repository, $GPTLIB_HOME, ~), never the build machine's folders."""
    import nbformat

    nb = nbformat.reads(committed_text(ipynb), as_version=4)
    found = [(i, m.group(0)) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             for output in cell.outputs for m in [MACHINE_PATH.search(_text_of(output))] if m]
    assert not found, f"{ipynb.name}: absolute paths stored in code cell(s) {found[:5]}"
    widgets = MACHINE_PATH.search(json.dumps(nb.metadata.get("widgets", {})).replace("\\/", "/"))
    assert not widgets, f"{ipynb.name}: an absolute path in the stored widget state: {widgets.group(0)}"
