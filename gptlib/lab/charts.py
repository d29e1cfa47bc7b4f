"""The lab's live charts: small SVG line charts, redrawn at every evaluation from the run's thread.

Hand-written SVG rather than matplotlib: a redraw is a string of a few kilobytes, built in
well under a millisecond from any thread and sent as the value of an ``HTML`` widget, with no
figure state, no image encoding and no Output widget to capture from a background thread
(``benchmarks/lab_speed.py`` prints the cost of each). Every point is a small circle
(``class="pt"``), so a curve of one point still shows, and tests can count points.
"""

from __future__ import annotations

import html
import math
from typing import Any

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt_tick(value: float) -> str:
    if value and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.0e}"
    return f"{value:,.4g}"


def x_range(xs: list[float], pad: float = 0.0) -> tuple[float, float]:
    """The x axis's (low, high) for these values, ``pad`` (a fraction of the span) beyond them.
    One value (a run with one evaluation) sits inside a span of its own, and an axis of counts
    (examples seen, all >= 0) never goes below 0: one point at 0 gives (0, 1)."""
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 - x0 < 1e-12:  # one x value: centre it, on an axis that stays >= 0 for counts
        half = max(abs(x0) * 0.5, 1.0)
        x0, x1 = x0 - half, x1 + half
    else:
        x0, x1 = x0 - pad * (x1 - x0), x1 + pad * (x1 - x0)
    if xs and min(xs) >= 0 and x0 < 0:
        x0, x1 = 0.0, max(x1, 2 * min(xs), 1.0)
    return x0, x1


def y_range(ys: list[float]) -> tuple[float, float]:
    """The y axis's (low, high): the values with 8% to spare (a single value gets a span of
    its own), never below 0 when no value is (losses and accuracies never are)."""
    y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = (y1 - y0) * 0.08 or max(abs(y0) * 0.25, 0.05)
    low, high = y0 - pad, y1 + pad
    if ys and y0 >= 0 and low < 0:
        low = 0.0
    return low, high


def svg_chart(series: list[dict[str, Any]], title: str = "", xlabel: str = "", ylabel: str = "",
              ylim: tuple[float, float] | None = None, width: int = 420, height: int = 240) -> str:
    """A line chart as an SVG string.

    ``series``: dicts with ``label``, ``x``, ``y`` and optional ``color`` and ``dashed``.
    Points whose value is None or NaN are left out. Each point is drawn as a small circle
    (``class="pt"``), so the number of plotted points can be counted in the markup.
    """
    left, right, top, bottom = 52, 12, 24, 40
    pw, ph = width - left - right, height - top - bottom
    height += 14 * len(series)  # the legend goes below the plot
    points = [[(float(x), float(y)) for x, y in zip(s["x"], s["y"], strict=False)
               if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]
              for s in series]
    xs = [x for pts in points for x, _ in pts]
    ys = [y for pts in points for _, y in pts]
    x0, x1 = x_range(xs)
    y0, y1 = ylim if ylim is not None else y_range(ys)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="white" stroke="#999"/>']
    for t in _ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{_fmt_tick(t)}</text>')
    for t in _ticks(x0, x1):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 4}" stroke="#999"/>'
                   f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle">{_fmt_tick(t)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 30}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text x="12" y="{top + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 12 {top + ph / 2})">{html.escape(ylabel)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="14" text-anchor="middle" font-weight="bold">'
               f'{html.escape(title)}</text>')
    if not xs:
        out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#888">'
                   "no points yet</text>")
    for i, (s, pts) in enumerate(zip(series, points, strict=True)):
        color = s.get("color") or PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5,3"' if s.get("dashed") else ""
        if len(pts) > 1:
            coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
        radius = 2.5 if len(pts) > 1 else 4  # a lone point is the whole curve: make it plain
        out += [f'<circle class="pt" cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius}" fill="{color}"/>'
                for x, y in pts]
        ly = top + ph + bottom + 10 + 14 * i
        out.append(f'<line x1="{left + 8}" y1="{ly - 3}" x2="{left + 24}" y2="{ly - 3}" stroke="{color}" '
                   f'stroke-width="1.5"{dash}/><text x="{left + 28}" y="{ly}">{html.escape(s["label"])}</text>')
    out.append("</svg>")
    return "".join(out)


def curves_html(curves: dict[str, list[float]], title: str = "this run") -> str:
    """The book's two plots for one run, side by side: losses and accuracies over examples seen."""
    loss = svg_chart([
        {"label": "training loss", "x": curves["eval_examples"], "y": curves["train_losses"]},
        {"label": "validation loss", "x": curves["eval_examples"], "y": curves["val_losses"], "dashed": True},
    ], title=f"loss, {title}", xlabel="examples seen", ylabel="loss")
    acc = svg_chart([
        {"label": "training accuracy", "x": curves["epoch_examples"], "y": curves["train_accs"]},
        {"label": "validation accuracy", "x": curves["epoch_examples"], "y": curves["val_accs"], "dashed": True},
    ], title=f"accuracy after each epoch, {title}", xlabel="examples seen", ylabel="accuracy", ylim=(0, 1.02))
    return f'<div class="gptlib-curves-svg" style="display: flex; gap: 12px">{loss}{acc}</div>'
