"""The experiment lab's old home, kept so that notebooks written for it still run: everything
here now lives in :mod:`gptlib.lab` (this module imports ipywidgets, as it always did)."""

from gptlib.lab.bonus import book_bonus_results, book_setting, book_setting_name
from gptlib.lab.charts import curves_html, svg_chart
from gptlib.lab.controls import (
    PADDING_OPTIONS,
    SPEED_OPTIONS,
    TOKEN_OPTIONS,
    TRAINABLE_OPTIONS,
    config_from_profile,
    padding_choice,
    padding_settings,
    trainable_choice,
    trainable_value,
    training_size,
)
from gptlib.lab.engine import RUN_COLUMNS
from gptlib.lab.panel import ExperimentPanel
from gptlib.lab.tables import frame_html

__all__ = ["PADDING_OPTIONS", "RUN_COLUMNS", "SPEED_OPTIONS", "TOKEN_OPTIONS", "TRAINABLE_OPTIONS",
           "ExperimentPanel", "book_bonus_results", "book_setting", "book_setting_name", "config_from_profile",
           "curves_html", "frame_html", "padding_choice", "padding_settings", "svg_chart", "trainable_choice",
           "trainable_value", "training_size"]
