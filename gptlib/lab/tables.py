"""The lab's tables as HTML: the runs, the per-setting summary over seeds, the book's bonus
results. Accuracies show as percentages; wide tables scroll inside their own box, so nothing
is drawn beyond the panel's edge."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from gptlib.lab.bonus import book_bonus_results
from gptlib.lab.engine import ACCURACY_COLUMNS, LORA_SETTINGS
from gptlib.settings import FinetuneConfig
from gptlib.support.noise import interval_text

CSS = """
<style>
.gptlib-lab table {border-collapse: collapse; font-size: 12px;}
.gptlib-lab th, .gptlib-lab td {border: 1px solid #ccc; padding: 2px 6px; text-align: right;
  white-space: nowrap;}
.gptlib-lab table.gptlib-book td:nth-child(2) {text-align: left;}
.gptlib-lab th {background: #f3f3f3;}
.gptlib-table-box {overflow-x: auto; max-width: 100%;}
.gptlib-msg-error {color: #b00020;}
.gptlib-msg-warning {color: #8a5300;}
.gptlib-msg-info {color: #1f4e79;}
.gptlib-lab .gptlib-curves-svg {flex-wrap: wrap;}
.gptlib-lab svg {max-width: 100%; height: auto;}
</style>
"""
# Column headings a reader can take in at a glance (the DataFrame keeps the settings' names).
HEADINGS = {
    "train_acc": "train", "val_acc": "val", "test_acc": "test", "best_val_epoch": "best val epoch",
    "train_val_gap": "train-val gap", "stopped_early": "stopped early", "examples_seen": "examples",
    "model_size": "model", "weight_decay": "weight decay", "drop_rate": "dropout", "batch_size": "batch",
    "max_length": "max length", "train_limit": "train msgs", "dropout_scope": "dropout in",
    "eval_freq": "eval every", "eval_iter": "eval batches", "test_mean": "test mean", "test_std": "test spread",
    "test_low": "95% low", "test_high": "95% high", "val_mean": "val mean", "seconds_mean": "seconds",
    "minutes": "A100 min", "causal_mask": "causal mask", "accumulation_steps": "accum. steps",
    "ignore_index": "ignore target", "lora": "LoRA",
}
PERCENT = (*ACCURACY_COLUMNS, "test_mean", "test_std", "test_low", "test_high", "val_mean")
KEY_COLUMNS = ("run", "group", "test_acc", "val_acc", "train_acc", "train_val_gap", "seconds")


def _fmt_percent(value: Any) -> str:
    try:
        return "" if pd.isna(value) else f"{100 * float(value):.2f}%"
    except (TypeError, ValueError):
        return str(value)


def frame_html(frame: pd.DataFrame, css_class: str, percent: tuple[str, ...] = PERCENT, title: str = "") -> str:
    """An HTML table of a DataFrame in a box that scrolls sideways, accuracy columns in percent."""
    shown = frame.copy().astype(object)
    shown = shown.where(shown.notna(), "")
    for column in percent:
        if column in shown.columns:
            shown[column] = shown[column].map(_fmt_percent)
    shown = shown.rename(columns={c: HEADINGS.get(c, c.replace("_", " ")) for c in shown.columns})
    heading = f"<b>{html.escape(title)}</b>" if title else ""
    body = shown.to_html(index=False, classes=css_class, escape=True, border=0, na_rep="")
    return f'<div class="gptlib-lab gptlib-table-box">{heading}{body}</div>'


MAIN_SETTINGS = ("trainable", "token", "padding", "epochs", "speed")
RARE_SETTINGS = ("causal_mask", "accumulation_steps", "ignore_index")  # shown alone only when not the book's


def _collapse_lora(columns: list[str]) -> list[str]:
    """LoRA's five settings as one column "lora", where the first of them was."""
    out: list[str] = []
    for c in columns:
        c = "lora" if c in LORA_SETTINGS else c
        if c not in out:
            out.append(c)
    return out


def runs_columns(runs: pd.DataFrame, varying: list[str], every: bool = False) -> list[str]:
    """The columns the runs table shows: the results, then the settings that differ between the
    runs (or, with ``every``, all of them). A single run shows its main settings, and the rare
    ones (causal mask, accumulation, ignored target, LoRA's) where they are not the book's.
    LoRA's settings show as one column, ``lora`` (see :func:`lora_label`)."""
    if every:
        return _collapse_lora([*KEY_COLUMNS, *[c for c in runs.columns if c not in KEY_COLUMNS]])
    book = FinetuneConfig()
    settings = list(varying) or [
        *(c for c in MAIN_SETTINGS if c in runs.columns),
        *(c for c in RARE_SETTINGS if c in runs.columns and (runs[c] != getattr(book, c)).any()),
        *(["lora"] if "trainable" in runs.columns and (runs["trainable"] == "lora").any() else [])]
    return _collapse_lora([*KEY_COLUMNS, *settings, "stopped_early"])


def lora_label(row: pd.Series) -> str:
    """A run's LoRA settings in a few characters, e.g. "r16 a16 alpha, head full" ("" without LoRA)."""
    if row.get("trainable") != "lora":
        return ""
    merged = ", merged" if row.get("lora_merged") is True else ""
    return (f"r{row.get('lora_rank')} a{float(row.get('lora_alpha')):g} {row.get('lora_scaling')}, "
            f"head {row.get('lora_head')}{merged}")


def runs_frame(runs: pd.DataFrame, varying: list[str], every: bool = False) -> pd.DataFrame:
    """The runs table's rows and columns as the lab shows them (:func:`runs_columns`)."""
    columns = runs_columns(runs, varying, every)
    shown = runs.assign(lora=runs.apply(lora_label, axis=1)) if "lora" in columns else runs
    return shown[columns]


def runs_html(runs: pd.DataFrame, varying: list[str], every: bool = False, live: bool = True) -> str:
    """The runs table; ``live``: in the panel (its title says how to see every column)."""
    if runs.empty:
        return '<div class="gptlib-lab"><i>No runs yet: press Run.</i></div>'
    note = "" if every or not live else " (settings that differ between runs; tick 'every column' for all)"
    return frame_html(runs_frame(runs, varying, every), "gptlib-runs", title=f"Your runs{note}")


def summary_html(summary: pd.DataFrame, n: int = 300) -> str:
    """The per-setting summary, once some setting has run with two seeds or more. ``n``: the
    test messages each run was measured on (the title gives one run's 95% interval on them)."""
    if summary.empty or summary["seeds"].max() < 2:
        return ""
    mean = float(summary["test_mean"].astype(float).mean())
    return frame_html(summary, "gptlib-summary",
                      title="Per setting, over seeds: test accuracy's mean, spread and 95% interval "
                            f"(the test sample alone, for one run at {mean:.2%}: {interval_text(mean, n)})")


def book_html() -> str:
    book = book_bonus_results().reset_index()
    return frame_html(book, "gptlib-book", title="The book's bonus experiments (pretrained GPT-2, A100; "
                      "gpt2-medium's 84.67% test is an outlier, below small, large and xl, that the table "
                      "does not explain)")
