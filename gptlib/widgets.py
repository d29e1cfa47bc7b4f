"""The experiment lab: a panel of widgets to fine-tune with different settings and compare runs.

``ExperimentPanel`` puts the settings of :class:`gptlib.finetune.FinetuneConfig` behind
controls (epochs, learning rate, weight decay, dropout, batch size, what trains, which token
is read, padding, model size, weights, training-set size, seed, speed), runs
:func:`gptlib.finetune.run_finetune` in a background thread (the kernel stays responsive),
and shows a progress bar, live loss and accuracy curves, a table of all runs (beside the
book's bonus results if wanted), an overlay plot of chosen runs, and a box to classify a
message with the model of the latest run::

    from gptlib.notebook import load_profile
    from gptlib.widgets import ExperimentPanel

    panel = ExperimentPanel(load_profile())   # or ExperimentPanel() for the book's settings
    panel                                     # shows it in Jupyter
    panel.set(token="last_real", epochs=3)
    panel.run(wait=True)                      # what the Run button does, but waiting for the end
    panel.runs                                # a DataFrame with one row per finished run

This is the only gptlib module that imports ipywidgets; ``import gptlib`` does not load it.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
from traitlets import TraitError

from gptlib import finetune
from gptlib.data import (
    CLASS_NAMES,
    SPAM_MEMBER,
    create_balanced_dataset,
    default_data_dir,
    find_local_copy,
    read_sms_spam,
)
from gptlib.device import get_device
from gptlib.download import atomic_write_bytes
from gptlib.finetune import FinetuneConfig, FinetuneResult
from gptlib.model import MODEL_CONFIGS, get_config, resolve_preset
from gptlib.tokenizer import get_tokenizer
from gptlib.train import EvalEvent, predict_proba

# --- the book's bonus experiments -------------------------------------------------------------
#
# Train / validation / test accuracy (percent) and minutes on an A100, pretrained GPT-2 small
# unless the setting says otherwise, from the book's additional classification experiments
# (its repository, chapter 6 bonus material). The bonus script shuffles the data once more
# before splitting, so its baseline differs a little from the chapter's run. The first column
# is a short key; the last names the panel settings that repeat the experiment ("-": the panel
# has no such setting, e.g. LoRA).
_BOOK_BONUS_TABLE = """
key          | setting                                             | train  | val   | test  | minutes | panel settings
baseline     | gpt2-small, last token, last block, pad to longest  | 96.63  | 99.33 | 95.00 | 0.28    |
first        | read the first token                                | 78.46  | 80.54 | 75.00 | 0.28    | token=first
head         | train the output head only                          | 78.65  | 79.87 | 72.00 | 0.25    | trainable=head
last2        | train the last two blocks                           | 98.85  | 98.66 | 98.33 | 0.33    | trainable=last_2_blocks
all          | train all layers                                    | 99.62  | 96.64 | 96.67 | 0.69    | trainable=all
medium       | gpt2-medium (355M)                                  | 87.50  | 91.28 | 84.67 | 0.75    | model_size=gpt2-medium (355M)
large        | gpt2-large (774M)                                   | 99.52  | 98.66 | 96.67 | 1.50    | model_size=gpt2-large (774M)
xl           | gpt2-xl (1558M)                                     | 99.81  | 99.81 | 98.33 | 2.83    | model_size=gpt2-xl (1558M)
random       | random weights, all layers trained                  | 100.00 | 96.64 | 93.67 | 0.69    | weights=random; trainable=all
lora         | LoRA, rank 16, alpha 16                             | 100.00 | 97.32 | 96.67 | 0.75    | -
context      | pad every message to the context length (1024)      | 83.08  | 87.92 | 78.33 | 2.46    | padding=context
nopad        | no padding (batch size 1)                           | 100.00 | 98.66 | 98.00 | 1.75    | padding=batch; batch_size=1
last_real    | read the last real (non-padding) token              | 99.42  | 98.66 | 98.33 | 0.30    | token=last_real
no_mask      | no causal attention mask                            | 99.23  | 98.66 | 95.33 | 0.29    | -
mean_pooled  | mean-pooled embeddings added                        | 97.79  | 99.33 | 96.33 | 0.32    | -
"""


def _parse_panel_settings(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if text == "-":
        return None
    settings: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, value = (s.strip() for s in item.split("=", 1))
        settings[name] = int(value) if value.isdigit() else value
    return settings


def _book_bonus_rows() -> list[dict[str, Any]]:
    lines = [line for line in _BOOK_BONUS_TABLE.strip().splitlines() if line.strip()]
    header = [h.strip() for h in lines[0].split("|")]
    rows = []
    for line in lines[1:]:
        cells = dict(zip(header, (c.strip() for c in line.split("|")), strict=True))
        rows.append({
            "key": cells["key"],
            "setting": cells["setting"],
            "train_acc": float(cells["train"]) / 100,
            "val_acc": float(cells["val"]) / 100,
            "test_acc": float(cells["test"]) / 100,
            "minutes": float(cells["minutes"]),
            "panel_settings": _parse_panel_settings(cells["panel settings"]),
        })
    return rows


def book_bonus_results() -> pd.DataFrame:
    """The book's bonus experiments as a DataFrame: setting, train/val/test accuracy (0..1), minutes.

    Indexed by a short key (``"baseline"``, ``"first"``, ``"last2"``, ...);
    :meth:`ExperimentPanel.apply_book_setting` takes the same keys.
    """
    rows = _book_bonus_rows()
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "panel_settings"} for r in rows])
    return frame.set_index("key")


def book_setting(key: str) -> dict[str, Any] | None:
    """Panel settings that repeat one of the book's bonus experiments (None: not possible here)."""
    for row in _book_bonus_rows():
        if row["key"] == key:
            return row["panel_settings"]
    raise KeyError(f"No bonus experiment {key!r}; choose one of {list(book_bonus_results().index)}.")


# --- choices offered by the panel -------------------------------------------------------------

TRAINABLE_OPTIONS = (
    ("output head only", "head"),
    ("last block + final norm (book)", "last_block"),
    ("last N blocks + final norm", "last_n"),
    ("all layers", "all"),
)
TOKEN_OPTIONS = (
    ("last (book)", "last"),
    ("first", "first"),
    ("last real (non-pad) token", "last_real"),
    ("mean over real tokens", "mean"),
)
PADDING_OPTIONS = (
    ("to the longest training message (book)", "longest"),
    ("per batch", "batch"),
    ("to the model's context", "context"),
    ("to a fixed length", "fixed"),
)
SPEED_OPTIONS = (
    ("book (plain loop)", "book"),
    ("exact (same numbers, faster)", "exact"),
    ("fast (last real token, per-batch padding)", "fast"),
)
BOOK_TRAIN_SIZE = 1045  # training messages in the book's split of the SMS Spam Collection
RUN_COLUMNS = (
    "run", "model", "weights", "epochs", "lr", "weight_decay", "drop_rate", "batch_size",
    "trainable", "token", "padding", "max_length", "train_size", "seed", "speed",
    "train_acc", "val_acc", "test_acc", "best_val_epoch", "train_val_gap", "seconds",
    "stopped_early", "examples_seen",
)
_ACCURACY_COLUMNS = ("train_acc", "val_acc", "test_acc", "train_val_gap")
_CSS = """
<style>
.gptlib-lab table {border-collapse: collapse; font-size: 12px;}
.gptlib-lab th, .gptlib-lab td {border: 1px solid #ccc; padding: 2px 6px; text-align: right;
  white-space: nowrap;}
.gptlib-lab th {background: #f3f3f3;}
.gptlib-msg-error {color: #b00020;}
.gptlib-msg-warning {color: #8a5300;}
.gptlib-msg-info {color: #1f4e79;}
</style>
"""


def trainable_choice(trainable: str | int) -> tuple[str, int]:
    """The panel's (choice, N) for a ``FinetuneConfig.trainable`` value."""
    if isinstance(trainable, int) and not isinstance(trainable, bool):
        return "last_n", trainable
    if trainable in ("head", "last_block", "all"):
        return trainable, 2
    match = re.fullmatch(r"last_?(\d+)(_blocks?)?", str(trainable))
    if match:
        n = int(match.group(1))
        return ("last_block", 1) if n == 1 else ("last_n", n)
    raise ValueError(f"Unknown trainable choice {trainable!r}; use 'head', 'last_block', 'last_N_blocks' or 'all'.")


def trainable_value(choice: str, n_blocks: int) -> str:
    """``FinetuneConfig.trainable`` for the panel's (choice, N)."""
    if choice == "last_n":
        return "last_block" if n_blocks == 1 else f"last_{n_blocks}_blocks"
    return choice


def padding_choice(padding: str, max_length: int | None, context_length: int) -> str:
    """The panel's padding choice for ``FinetuneConfig.padding`` and ``max_length``."""
    if padding == "batch":
        return "batch"
    if max_length is None:
        return "longest"
    return "context" if max_length == context_length else "fixed"


def padding_settings(choice: str, context_length: int, fixed_length: int) -> dict[str, Any]:
    """``FinetuneConfig`` padding and max_length for a panel padding choice."""
    if choice == "longest":
        return {"padding": "max_length", "max_length": None}
    if choice == "batch":
        return {"padding": "batch", "max_length": None}
    if choice == "context":
        return {"padding": "max_length", "max_length": context_length}
    if choice == "fixed":
        return {"padding": "max_length", "max_length": fixed_length}
    raise ValueError(f"Unknown padding choice {choice!r}; use one of {[v for _, v in PADDING_OPTIONS]}.")


def config_from_profile(profile: Any) -> FinetuneConfig:
    """A FinetuneConfig with a notebook profile's settings (``gptlib.notebook.load_profile()``).

    The lab's data splits go to ``<work_dir>/lab``; no figures or checkpoints are written.
    """
    data_file = getattr(profile, "data_file", None)
    return FinetuneConfig(
        model_size=profile.model, weights=profile.weights, epochs=profile.epochs, lr=profile.lr,
        weight_decay=profile.weight_decay, batch_size=profile.batch_size, seed=profile.seed,
        device=profile.device, eval_freq=profile.eval_freq, eval_iter=profile.eval_iter,
        data=str(data_file) if data_file else None, output=str(Path(profile.work_dir) / "lab"),
        figures=None,
    )


# --- data helpers -----------------------------------------------------------------------------

_size_cache: dict[tuple[str, float], int] = {}


def _data_source(cfg: FinetuneConfig) -> Path | None:
    """The raw SMS file a run will read, when it is already on disk."""
    try:
        local = find_local_copy(cfg.data)
    except FileNotFoundError:
        return None
    if local is not None:
        return local
    cached = default_data_dir() / "sms_spam_collection" / f"{SPAM_MEMBER}.tsv"
    return cached if cached.is_file() else None


def full_training_size(cfg: FinetuneConfig) -> int | None:
    """Messages in the training split (before ``train_limit``); None when it cannot be told yet.

    The split is the book's: balanced classes, 70% for training. Data that is still to be
    downloaded is the book's data, with 1,045 training messages.
    """
    source = _data_source(cfg)
    if source is None:
        return BOOK_TRAIN_SIZE if cfg.data is None else None
    if source.suffix == ".zip" or source.is_dir():
        return BOOK_TRAIN_SIZE
    key = (str(source), source.stat().st_mtime)
    if key not in _size_cache:
        try:
            balanced = create_balanced_dataset(read_sms_spam(source))
        except Exception:  # a bad file: the run itself reports what is wrong
            return None
        _size_cache[key] = int(len(balanced) * 0.7)
    return _size_cache[key]


def training_size(cfg: FinetuneConfig) -> int | None:
    """Messages a run trains on (``train_limit`` applied); None when unknown."""
    full = full_training_size(cfg)
    if cfg.train_limit is None:
        return full
    return cfg.train_limit if full is None else min(cfg.train_limit, full)


# --- plots: small SVG charts (cheap enough to redraw at every evaluation, from any thread) -----

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
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 - x0 < 1e-12:
        x0, x1 = x0 - 1, x1 + 1
    if ylim is not None:
        y0, y1 = ylim
    else:
        y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
        pad = (y1 - y0) * 0.08 or max(abs(y0) * 0.1, 0.05)
        y0, y1 = y0 - pad, y1 + pad

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
        out += [f'<circle class="pt" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}"/>' for x, y in pts]
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


def _empty_curves() -> dict[str, list[float]]:
    return {"eval_examples": [], "train_losses": [], "val_losses": [],
            "epoch_examples": [], "train_accs": [], "val_accs": []}


def _fmt_percent(value: Any) -> str:
    try:
        return "" if pd.isna(value) else f"{100 * float(value):.2f}%"
    except (TypeError, ValueError):
        return str(value)


def frame_html(frame: pd.DataFrame, css_class: str, percent: tuple[str, ...] = _ACCURACY_COLUMNS,
               title: str = "") -> str:
    """An HTML table of a DataFrame, accuracy columns shown as percentages."""
    shown = frame.copy().astype(object)
    shown = shown.where(shown.notna(), "")
    for column in percent:
        if column in shown.columns:
            shown[column] = shown[column].map(_fmt_percent)
    heading = f"<b>{html.escape(title)}</b>" if title else ""
    body = shown.to_html(index=False, classes=css_class, escape=True, border=0, na_rep="")
    return f'<div class="gptlib-lab" style="overflow-x: auto">{heading}{body}</div>'


# --- the panel --------------------------------------------------------------------------------


class ExperimentPanel:
    """Controls, Run/Stop, progress, live curves, a table of runs and a classifier box.

    ``defaults``: a :class:`FinetuneConfig` (None: the book's settings, data splits written to
    ``runs/lab``) or a notebook profile (``gptlib.notebook.load_profile()``). Settings without
    a control (data, device, eval_iter, output folder) come from it. ``output`` overrides where
    the data splits are written. Nothing else is saved: runs use ``save=False``.

    The methods the buttons call work from code too: :meth:`set`, :meth:`run`
    (``wait=True`` blocks until the end), :meth:`stop`, :meth:`classify`,
    :meth:`export_csv`. Finished (and stopped) runs are rows of :attr:`runs`.
    """

    def __init__(self, defaults: FinetuneConfig | Any | None = None, *, output: str | Path | None = None):
        if defaults is None:
            base = FinetuneConfig(output="runs/lab", figures=None)
        elif isinstance(defaults, FinetuneConfig):
            base = dataclasses.replace(defaults)
        else:
            base = config_from_profile(defaults)
        if output is not None:
            base = dataclasses.replace(base, output=str(output))
        self.base = base
        self.runs = pd.DataFrame(columns=list(RUN_COLUMNS))
        self.histories: dict[int, dict[str, list[float]]] = {}
        self.result: FinetuneResult | None = None
        self.model = None
        self.last_config: FinetuneConfig | None = None
        self.last_error: BaseException | None = None
        self.last_message = ""
        self.message_level = ""
        self.curves = _empty_curves()
        self.redraws: list[int] = []  # points plotted at each redraw of the live curves
        self.steps_done = 0
        self.event_hooks: list[Callable[[EvalEvent], Any]] = []
        self._stop = threading.Event()
        self._stopped_training = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._run_counter = 0
        self._tokenizer = None
        self._build_widgets()
        self.load_config(base)
        self._refresh_tables()
        self._update_hints()

    # --- construction ---------------------------------------------------------------------

    def _build_widgets(self) -> None:
        w = widgets
        style = {"description_width": "150px"}

        def wide() -> Any:  # one Layout per control: hiding one must not hide the others
            return w.Layout(width="420px")

        c: dict[str, Any] = {}
        c["epochs"] = w.BoundedIntText(min=1, max=1000, description="epochs", style=style, layout=wide())
        c["lr"] = w.FloatText(description="learning rate", style=style, layout=wide())
        c["weight_decay"] = w.FloatText(description="weight decay", style=style, layout=wide())
        c["drop_rate"] = w.BoundedFloatText(min=0.0, max=0.95, step=0.05, description="dropout rate",
                                            style=style, layout=wide())
        c["batch_size"] = w.BoundedIntText(min=1, max=4096, description="batch size", style=style, layout=wide())
        c["trainable"] = w.Dropdown(options=TRAINABLE_OPTIONS, description="what trains", style=style, layout=wide())
        c["blocks"] = w.BoundedIntText(min=1, max=1000, value=2, description="N (last N blocks)",
                                       style=style, layout=wide())
        c["token"] = w.Dropdown(options=TOKEN_OPTIONS, description="token read", style=style, layout=wide())
        c["padding"] = w.Dropdown(options=PADDING_OPTIONS, description="padding", style=style, layout=wide())
        c["fixed_length"] = w.BoundedIntText(min=1, max=100_000, value=120, description="fixed length",
                                             style=style, layout=wide())
        c["model_size"] = w.Dropdown(options=list(MODEL_CONFIGS), description="model", style=style, layout=wide())
        c["weights"] = w.Dropdown(options=[("pretrained (OpenAI)", "pretrained"), ("random", "random")],
                                  description="weights", style=style, layout=wide())
        c["train_limit"] = w.BoundedIntText(min=0, max=10_000_000, description="training messages",
                                            tooltip="0 = the whole training split", style=style, layout=wide())
        c["seed"] = w.IntText(description="seed", style=style, layout=wide())
        c["speed"] = w.Dropdown(options=SPEED_OPTIONS, description="speed", style=style, layout=wide())
        c["eval_freq"] = w.BoundedIntText(min=1, max=100_000, description="evaluate every (steps)",
                                          style=style, layout=wide())
        self.controls = c
        for control in c.values():
            control.observe(self._update_hints, names="value")

        self.run_button = w.Button(description="Run", button_style="success", icon="play",
                                   tooltip="Fine-tune with these settings (in the background)")
        self.run_button.add_class("gptlib-run")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                                    tooltip="Stop after the current step; keeps the curves and the model")
        self.stop_button.add_class("gptlib-stop")
        self.run_button.on_click(lambda _: self.run(wait=False))
        self.stop_button.on_click(lambda _: self.stop())
        self.status = w.HTML(value="idle")
        self.status.add_class("gptlib-status")
        self.hints = w.HTML()
        self.message = w.HTML()
        self.message.add_class("gptlib-message")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="steps", bar_style="info",
                                      layout=w.Layout(width="600px"))
        self.curve_view = w.HTML(value=curves_html(_empty_curves()))
        self.curve_view.add_class("gptlib-curves")

        self.runs_html = w.HTML()
        self.runs_html.add_class("gptlib-runs-table")
        self.book_html = w.HTML(value=frame_html(book_bonus_results().reset_index(drop=True), "gptlib-book",
                                                 title="The book's bonus experiments (A100)"))
        self.book_html.layout.display = "none"
        self.show_book = w.Checkbox(value=False, description="show the book's bonus results beside mine",
                                    indent=False, layout=w.Layout(width="auto"))
        self.show_book.observe(self._toggle_book, names="value")
        applicable = [(f"{row['setting']}", row["key"]) for row in _book_bonus_rows()
                      if row["panel_settings"] is not None]
        self.book_choice = w.Dropdown(options=[("(choose one)", "")] + applicable,
                                      description="try the book's", style={"description_width": "150px"},
                                      layout=w.Layout(width="600px"))
        self.book_choice.observe(self._on_book_choice, names="value")
        self.csv_path = w.Text(value=str(Path(self.base.output) / "lab_runs.csv"), description="CSV file",
                               layout=w.Layout(width="460px"))
        self.export_button = w.Button(description="Export CSV", icon="download")
        self.export_button.on_click(lambda _: self._export_clicked())
        self.overlay_runs = w.SelectMultiple(options=[], description="runs", rows=5,
                                             layout=w.Layout(width="320px"))
        self.overlay_metric = w.ToggleButtons(options=[("validation accuracy", "val_accs"),
                                                       ("validation loss", "val_losses")])
        self.overlay_view = w.HTML()
        self.overlay_view.add_class("gptlib-overlay")
        self.overlay_runs.observe(lambda _: self._draw_overlay(), names="value")
        self.overlay_metric.observe(lambda _: self._draw_overlay(), names="value")

        self.text = w.Textarea(value="Congratulations! You have won a free holiday. Call now to claim.",
                               description="message", layout=w.Layout(width="600px", height="60px"))
        self.classify_button = w.Button(description="Classify", icon="search", disabled=True)
        self.classify_button.add_class("gptlib-classify")
        self.classify_button.on_click(lambda _: self._classify_clicked())
        self.classify_out = w.HTML(value="<i>Run an experiment first; its model classifies the message.</i>")

        left = w.VBox([c["model_size"], c["weights"], c["trainable"], c["blocks"], c["token"],
                       c["padding"], c["fixed_length"], c["speed"]])
        right = w.VBox([c["epochs"], c["lr"], c["weight_decay"], c["drop_rate"], c["batch_size"],
                        c["train_limit"], c["seed"], c["eval_freq"]])
        settings = w.VBox([w.HTML("<h4>Settings</h4>"), self.book_choice, w.HBox([left, right]), self.hints])
        running = w.VBox([w.HBox([self.run_button, self.stop_button, self.status]), self.message,
                          self.progress, self.curve_view])
        table = w.VBox([w.HTML("<h4>All runs</h4>"), self.show_book, w.HBox([self.runs_html, self.book_html]),
                        w.HBox([self.csv_path, self.export_button]),
                        w.HTML("<b>Compare runs</b> (ctrl/shift-click to choose several)"),
                        w.HBox([self.overlay_runs, self.overlay_metric]), self.overlay_view])
        classify = w.VBox([w.HTML("<h4>Classify your own message</h4>"), self.text, self.classify_button,
                           self.classify_out])
        self.widget = w.VBox([w.HTML(_CSS + "<h3>Fine-tuning lab</h3>"), settings, running, table, classify])
        self.widget.add_class("gptlib-lab")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # --- settings ------------------------------------------------------------------------

    def load_config(self, cfg: FinetuneConfig) -> None:
        """Set every control from a FinetuneConfig."""
        c = self.controls
        model = resolve_preset(cfg.model_size)
        context = get_config(model)["context_length"]
        choice, n_blocks = trainable_choice(cfg.trainable)
        padding = padding_choice(cfg.padding, cfg.max_length, context)
        values = {
            "model_size": model, "weights": cfg.weights, "epochs": cfg.epochs, "lr": cfg.lr,
            "weight_decay": cfg.weight_decay, "drop_rate": cfg.drop_rate, "batch_size": cfg.batch_size,
            "trainable": choice, "blocks": n_blocks, "token": cfg.token, "padding": padding,
            "train_limit": cfg.train_limit or 0, "seed": cfg.seed, "speed": cfg.speed,
            "eval_freq": cfg.eval_freq,
        }
        if padding == "fixed":
            values["fixed_length"] = cfg.max_length
        for name, value in values.items():
            c[name].value = value

    def set(self, **values: Any) -> None:
        """Change controls by name, e.g. ``set(epochs=3, token="first", trainable="last_2_blocks",
        padding="batch")``. ``trainable`` takes FinetuneConfig values too; ``padding`` takes
        "longest", "batch", "context" or "fixed" (with ``fixed_length``), or an int length."""
        if "trainable" in values:
            choice, n_blocks = trainable_choice(values.pop("trainable"))
            self.controls["trainable"].value = choice
            if choice == "last_n":
                self.controls["blocks"].value = n_blocks
        if "padding" in values and isinstance(values["padding"], int):
            self.controls["fixed_length"].value = values.pop("padding")
            self.controls["padding"].value = "fixed"
        if values.get("train_limit", 0) is None:
            values["train_limit"] = 0
        if "model_size" in values:
            values["model_size"] = resolve_preset(values["model_size"])
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"No control(s) {sorted(unknown)}; the panel has {sorted(self.controls)}.")
        for name, value in values.items():
            try:
                self.controls[name].value = value
            except TraitError as err:
                raise ValueError(f"Cannot set {name} to {value!r}: {err}") from None

    def apply_book_setting(self, key: str) -> None:
        """Set the controls for one of the book's bonus experiments: the book's baseline, then
        the experiment's change (see :func:`book_bonus_results`)."""
        changes = book_setting(key)
        if changes is None:
            raise ValueError(f"The bonus experiment {key!r} needs code the panel does not have.")
        book = FinetuneConfig()
        self.set(model_size=book.model_size, weights=book.weights, trainable=book.trainable, token=book.token,
                 padding="longest", batch_size=book.batch_size)
        self.set(**changes)

    def _on_book_choice(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.apply_book_setting(change["new"])
            self._say(f"Settings of the book's bonus experiment '{book_setting_name(change['new'])}' "
                      "(epochs, learning rate and the rest unchanged).", "info")

    def config(self) -> FinetuneConfig:
        """The FinetuneConfig the controls describe (not yet checked)."""
        c = self.controls
        model = resolve_preset(c["model_size"].value)
        context = get_config(model)["context_length"]
        return dataclasses.replace(
            self.base, model_size=model, weights=c["weights"].value, epochs=c["epochs"].value,
            lr=c["lr"].value, weight_decay=c["weight_decay"].value, drop_rate=c["drop_rate"].value,
            batch_size=c["batch_size"].value,
            trainable=trainable_value(c["trainable"].value, c["blocks"].value), token=c["token"].value,
            train_limit=c["train_limit"].value or None, seed=c["seed"].value, speed=c["speed"].value,
            eval_freq=c["eval_freq"].value,
            **padding_settings(c["padding"].value, context, c["fixed_length"].value),
        )

    def check(self) -> tuple[list[str], list[str], FinetuneConfig | None]:
        """(problems, warnings, config) for the current settings: problems refuse a run."""
        from gptlib.weights import HF_REPOS, weights_path

        problems: list[str] = []
        notes: list[str] = []
        try:
            cfg = self.config()
        except ValueError as err:
            return [str(err)], [], None
        model_cfg = get_config(cfg.model_size)
        context, n_layers = model_cfg["context_length"], model_cfg["n_layers"]
        if cfg.max_length is not None and cfg.max_length > context:
            problems.append(f"A context of {cfg.max_length} tokens is longer than {cfg.model_size}'s "
                            f"{context}: choose a fixed length up to {context}.")
        if self.controls["trainable"].value == "last_n" and self.controls["blocks"].value > n_layers:
            problems.append(f"{cfg.model_size} has {n_layers} transformer blocks; cannot train the last "
                            f"{self.controls['blocks'].value}.")
        if cfg.weights == "pretrained" and cfg.model_size not in HF_REPOS:
            problems.append(f"{cfg.model_size} has no published weights: choose random weights.")
        n_train = training_size(cfg)
        if n_train is not None and cfg.batch_size > n_train:
            problems.append(f"Batch size {cfg.batch_size} is larger than the training set ({n_train} messages): "
                            "there would not be a single training batch.")
        if not problems:
            try:
                cfg.check()
            except ValueError as err:
                problems.append(str(err))
        try:
            device = get_device(cfg.device)
        except ValueError as err:
            problems.append(str(err))
            device = None
        if problems:
            return problems, notes, None
        effective = cfg.effective()
        if cfg.speed == "fast" and (cfg.token, cfg.padding) != (effective.token, effective.padding):
            notes.append("Speed 'fast' reads the last real token of messages padded per batch; "
                         "the token and padding choices are replaced by these.")
        if device is not None and device.type == "cpu":
            if effective.max_length is not None and effective.max_length >= 1024:
                notes.append(f"Padding every message to {effective.max_length} tokens on a CPU: each step "
                             "computes about 8 times as many positions as padding to the longest "
                             "message (120), so expect a run to take several times longer.")
            if model_cfg["emb_dim"] >= 1024:
                notes.append(f"{cfg.model_size} on a CPU: expect a long run (many minutes per epoch).")
        if cfg.weights == "pretrained" and not weights_path(cfg.model_size).exists():
            notes.append(f"{cfg.model_size}'s weights are not in the cache yet: the run downloads them first.")
        return problems, notes, cfg

    def _update_hints(self, _change: Any = None) -> None:
        c = self.controls
        c["blocks"].layout.display = None if c["trainable"].value == "last_n" else "none"
        c["fixed_length"].layout.display = None if c["padding"].value == "fixed" else "none"
        problems, notes, cfg = self.check()
        lines = [f'<span class="gptlib-msg-error">&#10007; {html.escape(p)}</span>' for p in problems]
        lines += [f'<span class="gptlib-msg-warning">&#9888; {html.escape(n)}</span>' for n in notes]
        if cfg is not None:
            n_train = training_size(cfg)
            if n_train is not None:
                steps = cfg.epochs * (n_train // cfg.batch_size)
                lines.append(f"{n_train} training messages, {steps} steps in all.")
        self.hints.value = "<br>".join(lines)

    # --- messages ----------------------------------------------------------------------------

    def _say(self, text: str, level: str = "info") -> None:
        self.last_message = text
        self.message_level = level
        body = html.escape(text).replace("\n", "<br>")
        self.message.value = f'<div class="gptlib-msg-{level}" style="white-space: normal">{body}</div>'

    # --- running -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self, wait: bool = False) -> bool:
        """Start a run with the current settings (what the Run button does).

        Returns False, with a message in the panel, when the settings are refused or a run is
        already going; True when the run started. ``wait=True`` returns only after it ended.
        """
        with self._lock:
            if self.running:
                self._say("A run is already going: wait for it, or press Stop.", "warning")
                return False
            problems, notes, cfg = self.check()
            if problems or cfg is None:
                self._say("Not run: " + " ".join(problems), "error")
                return False
            self._say(" ".join(["Running..."] + notes), "warning" if notes else "info")
            self._stop.clear()
            self._stopped_training = False
            self.last_error = None
            self.curves = _empty_curves()
            self.redraws = []
            self.curve_view.value = curves_html(self.curves, f"run {self._run_counter + 1}")
            self.steps_done = 0
            n_train = training_size(cfg)
            self.progress.max = max(cfg.epochs * (n_train // cfg.batch_size), 1) if n_train else 1
            self.progress.value = 0
            self.progress.bar_style = "info"
            self.run_button.disabled = True
            self.stop_button.disabled = False
            self.status.value = "starting: reading data, building the model..."
            self.last_config = cfg
            self._thread = threading.Thread(target=self._work, args=(cfg,), name="gptlib-lab-run", daemon=True)
            self._thread.start()
        if wait:
            self.wait()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current run to end; True when no run is going any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def stop(self) -> bool:
        """Ask the current run to stop after its current step (what the Stop button does).

        The run then still measures the final accuracies, keeps its curves, becomes a row of
        the table (``stopped_early`` "yes") and its model can classify messages. Returns True
        when a run was going.
        """
        if not self.running:
            return False
        self._stop.set()
        self.stop_button.disabled = True
        self.status.value = "stopping after this step..."
        return True

    def _callback(self, event: EvalEvent) -> bool:
        for hook in list(self.event_hooks):
            hook(event)
        if event.kind == "step":
            self.steps_done = event.global_step + 1
            if self.steps_done > self.progress.max:
                self.progress.max = self.steps_done
            self.progress.value = self.steps_done
            self.status.value = (f"epoch {event.epoch}, step {self.steps_done}/{self.progress.max}, "
                                 f"{event.examples_seen:,} examples seen")
        elif event.kind == "eval":
            self.curves["eval_examples"].append(event.examples_seen)
            self.curves["train_losses"].append(event.train_loss)
            self.curves["val_losses"].append(event.val_loss)
            self._draw_live()
        elif event.kind == "epoch":
            self.curves["epoch_examples"].append(event.examples_seen)
            self.curves["train_accs"].append(event.train_acc)
            self.curves["val_accs"].append(event.val_acc)
            steps_per_epoch = (event.global_step + 1) // event.epoch
            if event.epoch == 1 and self.last_config is not None:
                self.progress.max = max(steps_per_epoch * self.last_config.epochs, self.steps_done)
            self._draw_live()
        if self._stop.is_set():
            self._stopped_training = True  # training ends here; a later Stop changes nothing
            return True
        return False

    def curve_points(self) -> int:
        """How many points the live curves show now."""
        return sum(len(self.curves[k]) for k in ("train_losses", "val_losses", "train_accs", "val_accs"))

    def _draw_live(self) -> None:
        curves = {k: list(v) for k, v in self.curves.items()}
        self.curve_view.value = curves_html(curves, f"run {self._run_counter + 1}")
        self.redraws.append(self.curve_points())

    def _work(self, cfg: FinetuneConfig) -> None:
        start = time.perf_counter()
        try:
            result = finetune.run_finetune(cfg, callback=self._callback, progress=False,
                                           verbose=False, save=False)
        except BaseException as err:  # shown in the panel; the kernel and the panel go on
            self.last_error = err
            self.progress.bar_style = "danger"
            self.status.value = "failed"
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            self._say(f"The run failed after {time.perf_counter() - start:.1f} s.\n{detail}", "error")
        else:
            stopped = self._stopped_training
            self._record(cfg, result, stopped)
            self.progress.bar_style = "warning" if stopped else "success"
            done = "stopped early" if stopped else "done"
            self.status.value = f"{done} in {result.seconds:.1f} s"
            self._say(f"Run {self._run_counter} {done}: test accuracy {result.test_accuracy:.2%} "
                      f"({result.examples_seen:,} examples seen, {result.seconds:.1f} s).", "info")
        finally:
            self.run_button.disabled = False
            self.stop_button.disabled = True

    def _record(self, cfg: FinetuneConfig, result: FinetuneResult, stopped: bool) -> None:
        self._run_counter += 1
        run_id = self._run_counter
        used = FinetuneConfig.from_dict(result.config) if result.config else cfg.effective()
        context = get_config(used.model_size)["context_length"]
        val_accs = list(result.val_accs)
        best = max(range(len(val_accs)), key=val_accs.__getitem__) + 1 if val_accs else None
        row = {
            "run": run_id, "model": used.model_size, "weights": used.weights, "epochs": used.epochs,
            "lr": used.lr, "weight_decay": used.weight_decay, "drop_rate": used.drop_rate,
            "batch_size": used.batch_size, "trainable": used.trainable, "token": used.token,
            "padding": padding_choice(used.padding, used.max_length, context),
            "max_length": result.max_length if used.padding != "batch" else None,
            "train_size": training_size(used) if used.train_limit else "all",
            "seed": used.seed, "speed": used.speed,
            "train_acc": result.train_accuracy, "val_acc": result.val_accuracy, "test_acc": result.test_accuracy,
            "best_val_epoch": best, "train_val_gap": result.train_accuracy - result.val_accuracy,
            "seconds": round(result.seconds, 2), "stopped_early": "yes" if stopped else "no",
            "examples_seen": result.examples_seen,
        }
        new = pd.DataFrame([row], columns=list(RUN_COLUMNS))
        self.runs = new if self.runs.empty else pd.concat([self.runs, new], ignore_index=True)
        curves = {k: list(v) for k, v in self.curves.items()}
        if not curves["val_losses"] and result.val_losses:  # a run that reported no events
            curves.update(train_losses=list(result.train_losses), val_losses=list(result.val_losses),
                          eval_examples=list(range(len(result.val_losses))))
        if not curves["val_accs"] and result.val_accs:
            curves.update(train_accs=list(result.train_accs), val_accs=list(result.val_accs),
                          epoch_examples=list(range(1, len(result.val_accs) + 1)))
        self.histories[run_id] = curves
        self.result = result
        self.model = result.model
        self.classify_button.disabled = self.model is None
        self._refresh_tables(select=run_id)
        if self.model is not None:
            self._classify_clicked()

    # --- tables, overlay, export ---------------------------------------------------------------

    def runs_html_table(self) -> str:
        """The table of runs as HTML (accuracies in percent)."""
        if self.runs.empty:
            return '<div class="gptlib-lab"><i>No runs yet: press Run.</i></div>'
        results = ["run", "train_acc", "val_acc", "test_acc", "best_val_epoch", "train_val_gap", "seconds",
                   "stopped_early", "examples_seen"]
        shown = self.runs[results + [c for c in self.runs.columns if c not in results]]
        return frame_html(shown, "gptlib-runs", title="Your runs")

    def comparison_html(self) -> str:
        """The runs table and the book's bonus table side by side, as HTML."""
        book = frame_html(book_bonus_results().reset_index(drop=True), "gptlib-book",
                          title="The book's bonus experiments (A100)")
        cell = '<div style="display: inline-block; vertical-align: top; margin-right: 24px">{}</div>'
        return cell.format(self.runs_html_table()) + cell.format(book)

    def _refresh_tables(self, select: int | None = None) -> None:
        self.runs_html.value = self.runs_html_table()
        labels = [(self._run_label(int(r)), int(r)) for r in self.runs["run"]]
        chosen = tuple(v for v in self.overlay_runs.value if v in dict(labels).values())
        self.overlay_runs.options = labels
        if select is not None:
            chosen = tuple(sorted(set(chosen) | {select}))
        self.overlay_runs.value = chosen
        self._draw_overlay()

    def _run_label(self, run_id: int) -> str:
        row = self.runs[self.runs["run"] == run_id].iloc[0]
        return f"#{run_id} {row['trainable']}, {row['token']}, {row['padding']}, {row['epochs']} ep"

    def _draw_overlay(self) -> None:
        chosen = [r for r in self.overlay_runs.value if r in self.histories]
        if not chosen:
            self.overlay_view.value = "<i>Choose runs to compare.</i>" if self.histories else ""
            return
        metric = self.overlay_metric.value
        x_key = "epoch_examples" if metric == "val_accs" else "eval_examples"
        series = [{"label": self._run_label(r), "x": self.histories[r][x_key], "y": self.histories[r][metric]}
                  for r in chosen]
        accuracy = metric == "val_accs"
        self.overlay_view.value = svg_chart(
            series, title="validation accuracy after each epoch" if accuracy else "validation loss",
            xlabel="examples seen", ylabel="accuracy" if accuracy else "loss",
            ylim=(0, 1.02) if accuracy else None, width=620, height=280)

    def _toggle_book(self, change: dict[str, Any]) -> None:
        self.book_html.layout.display = None if change["new"] else "none"

    def export_csv(self, path: str | Path) -> Path:
        """Write the runs table to a CSV file (atomically: a complete file or none); return its path."""
        return atomic_write_bytes(Path(path), self.runs.to_csv(index=False).encode())

    def _export_clicked(self) -> None:
        try:
            path = self.export_csv(self.csv_path.value)
        except (OSError, ValueError) as err:
            self._say(f"Could not write the CSV file: {err}", "error")
        else:
            self._say(f"Wrote {len(self.runs)} run(s) to {path}", "info")

    # --- classifying ----------------------------------------------------------------------------

    def classify(self, text: str) -> dict[str, float]:
        """Class probabilities of a message under the latest run's model, as ``{class: p}``."""
        if self.model is None or self.result is None:
            raise RuntimeError("No model yet: run an experiment first.")
        used = self.result.config
        max_length = None if used.get("padding") == "batch" else self.result.max_length
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer()
        device = next(self.model.parameters()).device
        probs = predict_proba(text, self.model, self._tokenizer, device, max_length=max_length,
                              token=used.get("token", "last"))
        return dict(zip(CLASS_NAMES, probs, strict=False))

    def _classify_clicked(self) -> None:
        try:
            probs = self.classify(self.text.value)
        except (RuntimeError, ValueError) as err:
            self.classify_out.value = f'<span class="gptlib-msg-error">{html.escape(str(err))}</span>'
            return
        best = max(probs, key=probs.get)
        bars = "".join(
            f'<div>{html.escape(name)}: <span style="display:inline-block; background:#4a90d9; height:10px; '
            f'width:{int(200 * p)}px"></span> {p:.1%}</div>' for name, p in probs.items())
        self.classify_out.value = f"<b>{html.escape(best)}</b> (run {self._run_counter}){bars}"


def book_setting_name(key: str) -> str:
    return str(book_bonus_results().loc[key, "setting"])
