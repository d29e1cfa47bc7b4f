"""The book's bonus experiments (its chapter 6 bonus material), read from ``book_bonus.csv``.

Train / validation / test accuracy (percent) and minutes on an A100, pretrained GPT-2 small
unless the setting says otherwise. The bonus script shuffles the data once more before
splitting, so its baseline (95.00% test) differs a little from the chapter's run (95.67%).
The last column names the lab settings that repeat the experiment ("-": the lab has no such
setting yet, e.g. LoRA; empty: the baseline itself).
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd


def _parse_settings(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if text == "-":
        return None
    settings: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, value = (s.strip() for s in item.split("=", 1))
        settings[name] = int(value) if value.isdigit() else value
    return settings


@lru_cache(maxsize=1)
def _rows() -> tuple[dict[str, Any], ...]:
    text = resources.files("gptlib.lab").joinpath("book_bonus.csv").read_text(encoding="utf-8")
    rows = []
    for cells in csv.DictReader(text.splitlines()):
        rows.append({
            "key": cells["key"], "setting": cells["setting"],
            "train_acc": float(cells["train"]) / 100, "val_acc": float(cells["val"]) / 100,
            "test_acc": float(cells["test"]) / 100, "minutes": float(cells["minutes"]),
            "panel_settings": _parse_settings(cells["panel_settings"]),
        })
    return tuple(rows)


def book_bonus_rows() -> list[dict[str, Any]]:
    """The rows as dicts (a copy), with the lab settings that repeat each one."""
    return [dict(r) for r in _rows()]


def book_bonus_results() -> pd.DataFrame:
    """The book's bonus experiments as a DataFrame: setting, train/val/test accuracy (0..1), minutes.

    Indexed by a short key (``"baseline"``, ``"first"``, ``"last2"``, ...);
    :meth:`gptlib.lab.ExperimentPanel.apply_book_setting` takes the same keys.
    """
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "panel_settings"} for r in _rows()])
    return frame.set_index("key")


def book_setting(key: str) -> dict[str, Any] | None:
    """Lab settings that repeat one of the book's bonus experiments (None: not possible here)."""
    for row in _rows():
        if row["key"] == key:
            return None if row["panel_settings"] is None else dict(row["panel_settings"])
    raise KeyError(f"No bonus experiment {key!r}; choose one of {[r['key'] for r in _rows()]}.")


def book_setting_name(key: str) -> str:
    """The bonus experiment's description, e.g. "read the first token"."""
    return str(book_bonus_results().loc[key, "setting"])
