"""The lab's results without widgets: a picture of the runs' curves and the runs table as plain
HTML, for a reader whose viewer runs no widget code (GitHub, an HTML export, an untrusted
notebook in JupyterLab, a stored notebook opened before its cells run).

:meth:`gptlib.lab.ExperimentPanel.snapshot` makes one; shown in Jupyter it is two outputs, a
PNG (matplotlib's Agg canvas, no pyplot and no widget) and an HTML table with no ``<style>``
and no script, so that a sanitiser keeps it and every viewer shows both::

    panel.run(wait=True)
    panel.snapshot()        # the curves of every run so far, and the table

Loss and accuracy over examples seen, one colour per run: validation solid, training dashed,
a marker at every point (a run with one evaluation is one marker). No axis goes below 0, and
examples seen start at 0.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

from gptlib.lab.charts import PALETTE, x_range, y_range

PANELS = (  # (title, x key, validation key, training key, y label, fixed y range)
    ("loss", "eval_examples", "val_losses", "train_losses", "loss", None),
    ("accuracy after each epoch", "epoch_examples", "val_accs", "train_accs", "accuracy", (0.0, 1.02)),
)


def _points(xs: Sequence[Any], ys: Sequence[Any]) -> tuple[list[float], list[float]]:
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=False) if x is not None and y is not None
             and float(x) == float(x) and float(y) == float(y)]  # NaN != NaN: left out
    return [x for x, _ in pairs], [y for _, y in pairs]


def curves_png(histories: Mapping[int, Mapping[str, Sequence[float]]], labels: Mapping[int, str],
               dpi: int = 100) -> bytes:
    """A PNG of the runs' curves: loss (left) and accuracy (right) against examples seen, one
    colour per run (legend: ``labels[run]``); validation solid, training dashed, a marker at
    every point. :func:`curves_figure` is the figure itself."""
    buffer = io.BytesIO()
    curves_figure(histories, labels, dpi).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def curves_figure(histories: Mapping[int, Mapping[str, Sequence[float]]], labels: Mapping[int, str],
                  dpi: int = 100) -> Any:
    """The matplotlib ``Figure`` that :func:`curves_png` draws (two axes and a legend below)."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switched
    from matplotlib.lines import Line2D

    runs = list(histories)
    fig = Figure(figsize=(10, 3.6 + 0.22 * max(len(runs) - 1, 0)), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (title, x_key, val_key, train_key, ylabel, ylim) in zip(axes, PANELS, strict=True):
        all_x, all_y = [], []
        for i, run in enumerate(runs):
            color = PALETTE[i % len(PALETTE)]
            curves = histories[run]
            for key, style in ((val_key, "-"), (train_key, "--")):
                xs, ys = _points(curves.get(x_key, ()), curves.get(key, ()))
                all_x += xs
                all_y += ys
                solid = style == "-"
                ax.plot(xs, ys, style, color=color, marker="o", markersize=(6 if len(xs) == 1 else 3.5),
                        markerfacecolor=color if solid else "white", linewidth=1.6 if solid else 1.0,
                        alpha=1.0 if solid else 0.7, label=labels.get(run, f"run {run}") if solid else None)
        low, high = x_range(all_x, pad=0.03)
        ax.set_xlim(0.0 if all_x and min(all_x) >= 0 else low, high)  # examples seen count from 0
        ax.set_ylim(*(ylim or y_range(all_y)))
        ax.set_title(title)
        ax.set_xlabel("examples seen")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not all_x:
            ax.text(0.5, 0.5, "no points yet", transform=ax.transAxes, ha="center", color="#888")
    handles, names = axes[0].get_legend_handles_labels()
    style_key = [Line2D([], [], color="#555", marker="o", label="validation"),
                 Line2D([], [], color="#555", linestyle="--", marker="o", markerfacecolor="white", alpha=0.7,
                        label="training")]
    if handles:
        fig.legend(handles + style_key, names + ["validation", "training"], loc="outside lower center",
                   ncols=1 if len(runs) > 1 else 3, fontsize=8, frameon=False)
    return fig


def plain_html(markup: str) -> str:
    """HTML a sanitiser keeps as it is: no ``<style>``, no script, no ``style`` or ``class``
    attributes (the tables keep their ``border``, so they have lines with no CSS at all)."""
    markup = re.sub(r"<(style|script)\b.*?</\1>", "", markup, flags=re.S | re.I)
    markup = re.sub(r'\s(?:style|class)="[^"]*"', "", markup)
    return re.sub(r"<table(?: border=\"\d+\")?>", '<table border="1">', markup)


class LabSnapshot:
    """The lab's runs, drawn once: :attr:`png` (the curves) and :attr:`html` (the runs table),
    with :attr:`text` for a plain-text viewer. In IPython it shows as two outputs, the image and
    then the table (``_ipython_display_``); elsewhere ``_repr_mimebundle_`` gives one bundle
    with both (the image inlined in the HTML)."""

    def __init__(self, png: bytes | None, table_html: str, text: str, title: str = "Fine-tuning lab"):
        self.png, self.html, self.text, self.title = png, table_html, text, title

    def _image_bundle(self) -> dict[str, Any]:
        return {"image/png": base64.b64encode(self.png).decode("ascii"),
                "text/plain": f"<{self.title}: the curves of the runs (a PNG)>"}

    def _table_bundle(self) -> dict[str, Any]:
        return {"text/html": self.html, "text/plain": self.text}

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.png is not None:
            display(self._image_bundle(), raw=True)
        display(self._table_bundle(), raw=True)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = self._table_bundle()
        if self.png is not None:
            image = self._image_bundle()
            bundle["image/png"] = image["image/png"]
            bundle["text/html"] = (f'<img alt="{html.escape(self.title)}: curves" '
                                   f'src="data:image/png;base64,{image["image/png"]}">' + self.html)
        return bundle

    def __repr__(self) -> str:
        return self.text


def runs_text(shown: Any) -> str:
    """The runs table as plain text (accuracies in percent), for a viewer that shows only text."""
    from gptlib.lab.tables import PERCENT

    if shown is None or len(shown) == 0:
        return "Fine-tuning lab: no runs yet."
    frame = shown.copy().astype(object)
    for column in PERCENT:
        if column in frame.columns:
            frame[column] = [f"{100 * float(v):.2f}%" if v == v and v is not None else "" for v in frame[column]]
    return f"Fine-tuning lab: {len(frame)} run(s)\n" + frame.to_string(index=False)


def lab_snapshot(histories: Mapping[int, Mapping[str, Sequence[float]]], labels: Mapping[int, str],
                 tables_html: str, shown: Any = None) -> LabSnapshot:
    """A :class:`LabSnapshot` of the runs: their curves (none before the first run), the tables
    (the lab's HTML, made plain) and ``shown``, the runs table's frame, as text."""
    png = curves_png(histories, labels) if histories else None
    count = len(histories)
    intro = ("<p><b>Fine-tuning lab</b>: a static copy of the runs so far "
             f"({count} run{'s' if count != 1 else ''}; the live panel above needs a running kernel).</p>")
    return LabSnapshot(png, intro + plain_html(tables_html), runs_text(shown))
