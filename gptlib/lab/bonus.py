"""The book's bonus experiments (its chapter 6 bonus material), for the lab, read from the
registry :mod:`gptlib.study.experiments` (the one place the book's numbers and settings are kept).

Train / validation / test accuracy (here as fractions 0..1) and minutes on an A100,
pretrained GPT-2 small unless the setting says otherwise. The bonus script shuffles the data
once more before splitting, so its baseline (95.00% test) differs a little from the chapter's
run (95.67%).

The lab's panel spells two settings its own way: ``padding`` is one choice ("longest",
"batch", "none", "context" or a fixed length) instead of FinetuneConfig's ``padding`` +
``max_length``.
:func:`panel_settings` turns an experiment's FinetuneConfig settings into the panel's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from gptlib.models import any_config
from gptlib.settings import FinetuneConfig
from gptlib.study.experiments import UnknownExperimentError, experiments

COLUMNS = ("setting", "train_acc", "val_acc", "test_acc", "minutes")


def panel_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """FinetuneConfig settings as the lab panel's ``set(...)`` takes them: ``padding`` and
    ``max_length`` become one padding choice (:func:`gptlib.lab.controls.padding_choice`, the
    one converter; a fixed length as its number); every other setting keeps its name and value."""
    from gptlib.lab.controls import padding_choice

    out = {name: value for name, value in settings.items() if name not in ("padding", "max_length")}
    if "padding" in settings or "max_length" in settings:
        model = settings.get("model_size", FinetuneConfig().model_size)
        choice = padding_choice(settings.get("padding", "max_length"), settings.get("max_length"),
                                any_config(model)["context_length"])
        out["padding"] = settings["max_length"] if choice == "fixed" else choice
    return out


def panel_can_set(settings: Mapping[str, Any]) -> bool:
    """Whether the lab panel has a control (and a choice) for each of these panel settings."""
    from gptlib.lab.controls import (
        PADDING_OPTIONS,
        SIMPLE_CONTROLS,
        TOKEN_OPTIONS,
        trainable_choice,
    )

    if set(settings) - set(SIMPLE_CONTROLS) - {"trainable", "padding", "train_limit"}:
        return False
    if "token" in settings and settings["token"] not in {v for _, v in TOKEN_OPTIONS}:
        return False
    padding = settings.get("padding", "longest")
    if not isinstance(padding, int) and padding not in {v for _, v in PADDING_OPTIONS}:
        return False
    try:
        trainable_choice(settings.get("trainable", "last_block"))
    except ValueError:
        return False
    return True


def book_bonus_rows() -> list[dict[str, Any]]:
    """The 19 rows as dicts (fresh copies): key, number, setting, train/val/test_acc, minutes,
    ``settings`` (the FinetuneConfig settings that repeat the row) and ``panel_settings`` (the
    same for the lab panel; None where the panel has no control for one of them yet)."""
    rows = []
    for exp in experiments("bonus"):
        book = exp.book()
        panel = panel_settings(exp.settings)
        rows.append({"key": exp.key, "number": exp.number, "setting": exp.description,
                     "train_acc": book["train"], "val_acc": book["val"], "test_acc": book["test"],
                     "minutes": exp.minutes, "settings": dict(exp.settings),
                     "panel_settings": panel if panel_can_set(panel) else None})
    return rows


def book_bonus_results() -> pd.DataFrame:
    """The book's bonus experiments as a DataFrame: setting, train/val/test accuracy (0..1), minutes.

    Indexed by a short key (``"baseline"``, ``"first"``, ``"last2"``, ...);
    :meth:`gptlib.lab.ExperimentPanel.apply_book_setting` takes the same keys.
    """
    rows = [{"key": exp.key, "setting": exp.description, **{f"{k}_acc": v for k, v in exp.book().items()},
             "minutes": exp.minutes} for exp in experiments("bonus")]
    return pd.DataFrame(rows, columns=["key", *COLUMNS]).set_index("key")


def _bonus(key: str):
    for exp in experiments("bonus"):
        if exp.key == key:
            return exp
    raise UnknownExperimentError(f"No bonus experiment {key!r}; choose one of "
                                 f"{[e.key for e in experiments('bonus')]}.")


def book_setting(key: str) -> dict[str, Any]:
    """The lab panel's settings that repeat one of the book's bonus experiments (the change
    from the baseline). Some name settings the panel has no control for yet (e.g. LoRA's):
    the panel then refuses them with a message naming them."""
    return panel_settings(_bonus(key).settings)


def book_setting_name(key: str) -> str:
    """The bonus experiment's description, e.g. "read the first token"."""
    return _bonus(key).description
