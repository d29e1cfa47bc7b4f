"""The chapter notebooks: each .ipynb has its jupytext .py twin with the same cells, a
``parameters`` cell, and outputs stored only where nbval checks them; the notebook helper
module stays free of ipywidgets at import time.

Executing the notebooks is nbval's job (``pytest --nbval-lax notebooks/``), not this file's.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_outputs_stored_only_for_checked_cells(ipynb: Path):
    import nbformat

    nb = nbformat.reads(committed_text(ipynb), as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if CHECK_MARK in cell.source:
            # nbval skips (and with outputs, rejects) a reference cell without an execution count
            assert cell.outputs, f"cell {i} is checked by nbval but has no stored output"
            assert cell.execution_count is not None, f"cell {i}: a checked cell needs its execution count"
        else:
            assert not cell.outputs, f"cell {i}: outputs are stored only for {CHECK_MARK} cells"
            assert cell.execution_count is None, f"cell {i}: execution counts are stored only for checked cells"


def test_notebook_helpers_do_not_import_ipywidgets():
    code = (
        "import sys, gptlib.notebook\n"
        "assert 'ipywidgets' not in sys.modules, 'gptlib.notebook imported ipywidgets'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
