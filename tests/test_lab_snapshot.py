"""The lab without widgets: ``panel.snapshot()`` shows the runs' curves as a PNG and the runs
table as plain HTML (two outputs in Jupyter, both kept by nbconvert's HTML export), and a curve
of one point is a marker on axes that never go below 0, in the PNG and in the live SVG charts.

Runs use the smoke profile (the tiny random model and 36 training messages): about a second each.
"""

from __future__ import annotations

import base64
import io
import re

import pytest

pytest.importorskip("ipywidgets")

from gptlib.lab.charts import curves_html, svg_chart, x_range, y_range  # noqa: E402
from gptlib.lab.panel import ExperimentPanel  # noqa: E402
from gptlib.lab.snapshot import LabSnapshot, curves_figure, lab_snapshot, plain_html  # noqa: E402
from gptlib.lab.tables import summary_html  # noqa: E402
from gptlib.notebook import load_profile  # noqa: E402
from gptlib.support.noise import interval_text  # noqa: E402


@pytest.fixture
def panel(gptlib_home, tmp_path, one_thread):
    p = ExperimentPanel(load_profile("smoke"), output=tmp_path / "lab")
    yield p
    p.stop()
    assert p.wait(120), "a run did not end"


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """An IPython shell (no history file) whose display calls can be captured."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.clear_instance()
    yield InteractiveShell.instance(config=config)
    InteractiveShell.clear_instance()


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _ink(ax) -> list:
    """The lines an axes shows, with their points."""
    return [line for line in ax.get_lines() if len(line.get_xdata())]


def test_snapshot_is_a_png_of_every_run_and_a_plain_table(panel, shell):
    panel.set(epochs=1)
    assert panel.run(wait=True), panel.last_message
    panel.set(epochs=2, token="first")
    assert panel.run(wait=True), panel.last_message
    snap = panel.snapshot()
    assert isinstance(snap, LabSnapshot)

    # the picture: loss and accuracy against examples seen, one line per run, labelled by run
    width, height = _png_size(snap.png)
    assert width >= 800 and height >= 300
    fig = curves_figure(panel.histories, {r: panel._run_label(r) for r in (1, 2)})
    loss, acc = fig.axes[:2]
    assert loss.get_xlabel() == acc.get_xlabel() == "examples seen"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == [panel._run_label(1), panel._run_label(2)] and "#2" in legend[1] and "first" in legend[1]
    val_accs = [line for line in _ink(acc) if line.get_linestyle() == "-"]
    assert [list(line.get_ydata()) for line in val_accs] == [panel.histories[r]["val_accs"] for r in (1, 2)]
    assert [list(line.get_xdata()) for line in val_accs] == [panel.histories[r]["epoch_examples"] for r in (1, 2)]

    # the table: plain HTML a sanitiser keeps (no <style>, no script, no style or class attribute)
    html = snap.html
    assert "<table" in html and "<style" not in html and "<script" not in html
    assert not re.search(r"\s(style|class)=", html)
    assert html.count("<tr>") >= 3 and "first" in html and f"{100 * panel.runs['test_acc'].iloc[1]:.2f}%" in html
    assert "2 run(s)" in snap.text and "first" in snap.text

    # in Jupyter: two outputs, the picture and then the table, as the cell's own display
    from IPython.utils.capture import capture_output

    shell.user_ns["panel"] = panel
    with capture_output() as shown:
        assert shell.run_cell("panel.snapshot()").success
    kinds = [set(o.data) for o in shown.outputs]
    assert kinds == [{"image/png", "text/plain"}, {"text/html", "text/plain"}]
    assert base64.b64decode(shown.outputs[0].data["image/png"])[:4] == b"\x89PNG"
    # elsewhere: one bundle with both (the image inlined in the HTML)
    bundle = snap._repr_mimebundle_()
    assert bundle["text/html"].startswith('<img alt=') and "data:image/png;base64," in bundle["text/html"]

    # nbconvert's HTML export keeps both outputs: the image and the table
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    cell = nbformat.v4.new_code_cell("panel.snapshot()")
    cell.outputs = [nbformat.v4.new_output("display_data", data=dict(o.data)) for o in shown.outputs]
    nb = nbformat.v4.new_notebook(cells=[cell])
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert 'src="data:image/png;base64,' in body and "<td>first</td>" in body


def test_a_one_epoch_run_is_a_marker_on_axes_from_zero(panel):
    panel.set(epochs=1)
    assert panel.run(wait=True), panel.last_message
    curves = panel.histories[1]
    assert len(curves["val_accs"]) == 1
    fig = curves_figure(panel.histories, {1: "one epoch"})
    loss, acc = fig.axes[:2]
    for ax in (loss, acc):
        assert ax.get_xlim()[0] == 0 and ax.get_ylim()[0] >= 0
        assert ax.get_xlim()[1] > max(max(line.get_xdata()) for line in _ink(ax))
    lone = _ink(acc)
    assert len(lone) == 2 and all(len(line.get_xdata()) == 1 and line.get_marker() == "o" for line in lone)
    assert acc.get_ylim() == pytest.approx((0, 1.02))
    # the live panel's SVG: each of the two accuracy curves is one circle, ticks never negative
    svg = curves_html(curves)
    assert svg.count('class="pt"') == sum(len(curves[k]) for k in ("train_losses", "val_losses",
                                                                    "train_accs", "val_accs"))
    assert not re.search(r">-\d", svg), "a negative tick label"
    assert panel.curve_view.value.count('class="pt"') == svg.count('class="pt"')


def test_one_point_axes_are_sensible():
    assert x_range([0]) == (0.0, 1.0) and x_range([32]) == (16.0, 48.0) and x_range([]) == (0.0, 1.0)
    assert x_range([0, 100], pad=0.05) == (0.0, 105.0)
    low, high = y_range([0.0])
    assert low == 0 and high > 0
    svg = svg_chart([{"label": "accuracy", "x": [0], "y": [0.0]}], ylim=None)
    assert svg.count('class="pt"') == 1 and not re.search(r">-\d", svg)
    cx = float(re.search(r'class="pt" cx="([\d.]+)"', svg).group(1))
    assert cx >= 52  # on the plot, not left of its frame


def test_a_snapshot_before_any_run_and_of_a_curve_with_gaps():
    snap = lab_snapshot({}, {}, '<div class="x"><table border="0" class="dataframe"><tr><td>1</td></tr></table></div>')
    assert snap.png is None and snap.text == "Fine-tuning lab: no runs yet."
    assert set(snap._repr_mimebundle_()) == {"text/html", "text/plain"}
    assert plain_html("<style>b {}</style><b style='x' class=\"y\">b</b><script>x()</script>") == "<b style='x'>b</b>"
    assert '<table border="1">' in snap.html and "class=" not in snap.html
    nan = float("nan")
    fig = curves_figure({1: {"eval_examples": [0, 8, 16], "val_losses": [0.7, nan, 0.6], "train_losses": [],
                             "epoch_examples": [], "val_accs": [], "train_accs": []}}, {1: "gaps"})
    assert [list(line.get_xdata()) for line in _ink(fig.axes[0])] == [[0.0, 16.0]]
    assert any(t.get_text() == "no points yet" for t in fig.axes[1].texts)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert _png_size(buffer.getvalue())[0] > 0


def test_the_summary_title_gives_the_95_percent_interval():
    import pandas as pd

    summary = pd.DataFrame([{"group": 1, "runs": "1, 2", "seeds": 2, "test_mean": 0.94, "test_std": 0.01,
                             "test_low": 0.91, "test_high": 0.97, "val_mean": 0.95, "seconds_mean": 3.0}])
    html = summary_html(summary, n=300)
    assert interval_text(0.94, 300) in html and "+-2.5" not in html and "95% interval" in html
    assert interval_text(0.94, 40) in summary_html(summary, n=40)
    assert summary_html(summary.assign(seeds=1)) == ""


def test_the_panel_says_what_it_is_where_widgets_cannot_show(gptlib_home):
    bundle = ExperimentPanel()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert not bundle["text/plain"].startswith("VBox(") and "panel.snapshot()" in bundle["text/plain"]
