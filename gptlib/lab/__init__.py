"""The experiment lab, in rooms of its own:

* :mod:`~gptlib.lab.engine`: runs in a background thread, Stop, history, the runs table,
  repeats over seeds, CSV export (no widgets; tests drive it directly);
* :mod:`~gptlib.lab.panel`: :class:`ExperimentPanel`, which subscribes to the engine; its
  widgets and layout are :mod:`~gptlib.lab.view`, its settings form (controls to and from
  :class:`~gptlib.settings.FinetuneConfig`, hints) :mod:`~gptlib.lab.form` (these import ipywidgets);
* :mod:`~gptlib.lab.charts`: the live SVG curves;  :mod:`~gptlib.lab.tables`: the HTML tables;
* :mod:`~gptlib.lab.snapshot`: the runs as a PNG and a plain table, for viewers without widgets
  (``panel.snapshot()``);  :mod:`~gptlib.lab.messages`: a failed run's one line, in the lab's words;
* :mod:`~gptlib.lab.bonus`: the book's bonus table, read from :mod:`gptlib.study.experiments`;
* :mod:`~gptlib.lab.controls` and :mod:`~gptlib.lab.checks`: controls as settings, and what
  is said of them before a run;  :mod:`~gptlib.lab.explorers`: the small notebook explorers.

``import gptlib.lab`` loads no widgets; ``ExperimentPanel`` is imported on first use.
"""

from __future__ import annotations

from typing import Any

from gptlib.lab.bonus import book_bonus_results, book_setting, book_setting_name
from gptlib.lab.engine import RUN_COLUMNS, LabEvent, RunEngine

__all__ = ["RUN_COLUMNS", "ExperimentPanel", "LabEvent", "RunEngine", "book_bonus_results", "book_setting",
           "book_setting_name"]


def __getattr__(name: str) -> Any:
    if name == "ExperimentPanel":
        from gptlib.lab.panel import ExperimentPanel

        return ExperimentPanel
    raise AttributeError(f"module 'gptlib.lab' has no attribute {name!r}")
