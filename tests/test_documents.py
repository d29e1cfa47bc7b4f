"""The committed chapter notebooks read as documents that never contradict themselves.

Read as a reader sees them (the stored outputs, as git holds them): every slow cell is
announced by a time estimate in the code cell above it; no progress bar is stored at "0%";
every stored widget carries a static rendering for viewers that run no widget code; every lab
run is followed by a stored picture of its curves; the banner agrees with the stored numbers.
Building them is ``notebooks/build.py --execute offline``'s job; these tests only read.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

from tests.test_notebooks_pairs import IPYNBS, _text_of, committed_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))
from widget_snapshots import STORED_NOTE, Renderer, add_snapshots, clean_html  # noqa: E402

sys.path.pop(0)

VIEW = "application/vnd.jupyter.widget-view+json"
ESTIMATE = re.compile(r"about (\d+ minutes|\d+ seconds|10 seconds or less) here")
ZERO_BAR = re.compile(r"\b0%\|| 0/\d+ \[00:00")
LAB_RUN = re.compile(r"panel\.run\(wait=True\)|engine\.start\(.*wait=True")


def stored(ipynb: Path):
    return nbformat.reads(committed_text(ipynb), as_version=4)


def code_cells(nb) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_every_slow_cell_is_announced_with_its_time(ipynb: Path):
    """A cell that ran over 60 s in the build has, in the code cell just above it, a printed
    estimate worked out on the machine ("about N minutes here")."""
    nb = stored(ipynb)
    seconds = nb.metadata.get("gptlib", {}).get("seconds")
    assert seconds is not None, f"{ipynb.name}: no cell timings stored; rebuild with build.py --execute offline"
    code = code_cells(nb)
    for index, took in seconds.items():
        if took <= 60:
            continue
        before = [c for i, c in code if i < int(index)]
        assert before, f"{ipynb.name}: cell {index} took {took} s and has no code cell above it"
        above = " ".join(_text_of(o) for o in before[-1].outputs)
        assert ESTIMATE.search(above), (f"{ipynb.name}: cell {index} took {took:.0f} s, but the cell above it "
                                        f"prints no time estimate: {above[:200]!r}")


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_no_progress_bar_is_stored_at_zero(ipynb: Path):
    nb = stored(ipynb)
    for i, cell in code_cells(nb):
        for output in cell.outputs:
            text = _text_of(output)
            assert not ZERO_BAR.search(text), f"{ipynb.name} cell {i}: a progress bar stored at 0%: {text[:120]!r}"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_every_stored_widget_has_a_static_rendering(ipynb: Path):
    """GitHub, nbviewer and an untrusted JupyterLab show text/html (or text/plain) instead of the
    widget: that is the widget's stored state rendered, never its constructor's repr."""
    nb = stored(ipynb)
    for i, cell in code_cells(nb):
        for output in cell.outputs:
            data = output.get("data", {})
            if VIEW not in data:
                continue
            assert "text/html" in data, f"{ipynb.name} cell {i}: a stored widget without a static rendering"
            html = "".join(data["text/html"])
            assert STORED_NOTE in html and "<style" not in html and "<script" not in html
            plain = "".join(data["text/plain"])
            assert not re.match(r"\[?\w*(Box|HTML)\(children=", plain), f"{ipynb.name} cell {i}: {plain[:80]!r}"


@pytest.mark.parametrize("ipynb", [p for p in IPYNBS if "lab" in p.stem or "lora" in p.stem], ids=lambda p: p.stem)
def test_every_lab_run_is_followed_by_a_stored_picture(ipynb: Path):
    nb = stored(ipynb)
    code = code_cells(nb)
    runs = [n for n, (_, c) in enumerate(code) if LAB_RUN.search(c.source)]
    assert runs, f"{ipynb.name}: no lab run found"
    for n in runs:
        near = [o for _, c in code[n:n + 2] for o in c.outputs]
        assert any("image/png" in o.get("data", {}) for o in near), (
            f"{ipynb.name}: the lab run in code cell {code[n][0]} stores no PNG of its curves after it")


def _percent_after(text: str, label: str) -> float | None:
    m = re.search(label + r"\D{0,40}?(\d+\.\d+)%", text)
    return float(m.group(1)) if m else None


def test_the_banner_agrees_with_the_stored_run():
    """The offline banner's "about 93-94% test" and "within noise" hold for the stored run of
    notebook 05, and no notebook's banner claims a shift the numbers do not show."""
    nb = stored(ROOT / "notebooks" / "05_finetuning_and_evaluation.ipynb")
    assert nb.metadata["gptlib"]["profile"] == "offline"
    text = "\n".join(_text_of(o) for _, c in code_cells(nb) for o in c.outputs)
    test = _percent_after(text, "Test accuracy")
    assert test is not None, "05 stores no 'Test accuracy: N%' line"
    banner = next(_text_of(o) for _, c in code_cells(nb) for o in c.outputs if "Profile" in _text_of(o))
    low, high = (float(x) for x in re.search(r"about (\d+)-(\d+)% test", banner).groups())
    assert low - 2.5 <= test <= high + 2.5, f"banner says {low:g}-{high:g}% test; the stored run has {test}%"
    for ipynb in IPYNBS:
        for _, cell in code_cells(stored(ipynb)):
            for output in cell.outputs:
                assert "point worse" not in _text_of(output), f"{ipynb.name}: the banner's old over-claim"


# --- the static rendering itself, on a small saved state ------------------------------------------

def _state():
    def m(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    return {
        "box": m("VBoxModel", children=["IPY_MODEL_title", "IPY_MODEL_row", "IPY_MODEL_gone"]),
        "title": m("HTMLModel", value="<style>.x{color:red}</style><h3 onclick='x()'>Lab</h3>"),
        "row": m("HBoxModel", children=["IPY_MODEL_run", "IPY_MODEL_bar", "IPY_MODEL_status"]),
        "run": m("ButtonModel", description="Run", tooltip=None),
        "bar": m("IntProgressModel", description="steps", value=650, max=650),
        "status": m("HTMLModel", value="done in 8.1 s", _dom_classes=["gptlib-status"]),
        "gone": m("HTMLModel", value="hidden", layout="IPY_MODEL_hide"),
        "hide": {"model_name": "LayoutModel", "state": {"display": "none"}},
    }


def test_a_stored_widget_renders_from_its_final_state_without_styles_or_hidden_parts():
    html, text = Renderer(_state()).render("box")
    assert "<h3>Lab</h3>" in html and "<style" not in html and "onclick" not in html
    assert "steps |####################| 650/650" in text and "[Run]" in text and "done in 8.1 s" in text
    assert "hidden" not in html and text.startswith(f"[{STORED_NOTE}]")
    assert clean_html("<svg><path/></svg><b style='x'>b</b>") == "<b>b</b>"


def test_add_snapshots_fills_each_view_and_marks_the_stored_state():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": _state()}}
    cell = nbformat.v4.new_code_cell("panel")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "VBox(children=(...))"})]
    nb.cells = [cell]
    assert add_snapshots(nb) == 1
    data = cell.outputs[0]["data"]
    assert "Lab" in data["text/html"] and not data["text/plain"].startswith("VBox(")
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert "does nothing" in state["run"]["state"]["tooltip"]
    assert "stored copy" in state["status"]["state"]["value"]
    assert "done in 8.1 s" in data["text/html"]  # the rendering shows the run as it ended


# --- opening a stored notebook changes nothing -----------------------------------------------------

ALL_NOTEBOOKS = IPYNBS + sorted((ROOT / "notebooks" / "assignments").glob("A[0-9][0-9]_*.ipynb"))


def _whole_floats(value) -> list[float]:
    if isinstance(value, dict):
        return [f for v in value.values() for f in _whole_floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _whole_floats(v)]
    return [value] if isinstance(value, float) and value.is_integer() else []


@pytest.mark.parametrize("ipynb", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_opening_a_notebook_in_jupyterlab_marks_nothing_modified(ipynb: Path):
    """JupyterLab fills in what a notebook lacks as soon as it loads it (``language_info``) or its
    kernel connects (the kernelspec's display name), and writes the widget state's numbers as
    the browser has them (0.0 as 0): each of these marks the notebook modified, and autosave then
    rewrites the .ipynb and its .py. Stored as JupyterLab would write them, nothing changes."""
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        from build import KERNELSPEC
    finally:
        sys.path.pop(0)
    nb = stored(ipynb)
    assert nb.metadata.get("kernelspec") == KERNELSPEC
    assert nb.metadata.get("language_info", {}).get("name") == "python"
    assert not _whole_floats(nb.metadata.get("widgets", {})), "whole-number floats in the widget state (0.0)"
    header = ipynb.with_suffix(".py").read_text().split("# ---", 2)[1]
    assert f"display_name: {KERNELSPEC['display_name']}" in header, f"{ipynb.with_suffix('.py').name}'s header"
