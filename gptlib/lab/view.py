"""The lab panel's widgets and their layout: one control per simple setting (made from the
setting's metadata), the composite ones, buttons, progress, curves, tables, classifier box.
Only this module, :mod:`gptlib.lab.form` and :mod:`gptlib.lab.panel` import ipywidgets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from gptlib.lab.bonus import book_bonus_rows
from gptlib.lab.charts import curves_html
from gptlib.lab.controls import (
    LORA_CONTROLS,
    LORA_HEAD_OPTIONS,
    LORA_SCALING_OPTIONS,
    PADDING_OPTIONS,
    SIMPLE_CONTROLS,
    SPEED_OPTIONS,
    TOKEN_OPTIONS,
    TRAINABLE_OPTIONS,
    control_label,
)
from gptlib.lab.engine import empty_curves
from gptlib.lab.tables import CSS, book_html
from gptlib.settings import setting_fields

OPTIONS = {
    "token": TOKEN_OPTIONS, "speed": SPEED_OPTIONS, "lora_scaling": LORA_SCALING_OPTIONS,
    "lora_head": LORA_HEAD_OPTIONS,
    "weights": (("pretrained (OpenAI)", "pretrained"), ("random", "random")),
    "dropout_scope": (("by speed (fast: trainable)", "auto"),
                      ("every block, frozen ones too (book)", "all"), ("only the parts that train", "trainable")),
}
STYLE = {"description_width": "150px"}
FIT = "calc(100% - 4px)"  # never wider than the panel, margins included (a narrow window)
LORA_STYLE = {"description_width": "137px"}  # inside the LoRA box's 13 px margin: values line up
WITHOUT_WIDGETS = ("The fine-tuning lab: a live panel, shown when the notebook's cells run in Jupyter (a "
                   "trusted notebook). panel.snapshot() shows its runs as a picture and a table anywhere.")
ADVANCED_TITLE = "advanced: causal mask, gradient accumulation, ignored target"


def _layout(width: str = "420px") -> widgets.Layout:  # one Layout per control: hiding one must not hide others
    return widgets.Layout(width=width, max_width=FIT)


def _simple_control(f: dataclasses.Field) -> widgets.Widget:
    label, tip = control_label(f.name), f.metadata["help"]
    lora = f.name in LORA_CONTROLS
    common = {"description": label, "tooltip": tip, "style": LORA_STYLE if lora else STYLE,
              "layout": _layout("407px" if lora else "420px")}
    if f.name in OPTIONS or f.metadata["choices"]:
        return widgets.Dropdown(options=OPTIONS.get(f.name) or list(f.metadata["choices"]), **common)
    if f.metadata["parse"] == "bool":
        return widgets.Checkbox(indent=True, **common)
    if f.metadata["parse"] == "float":
        limit = 0.95 if f.name == "drop_rate" else 1e6
        return widgets.BoundedFloatText(min=0.0, max=limit, step=0.05 if f.name == "drop_rate" else None, **common)
    if f.name in ("seed", "ignore_index"):
        return widgets.IntText(**common)
    return widgets.BoundedIntText(min=1, max=100_000, **common)


def book_choices() -> list[tuple[str, str]]:
    """The "try the book's" menu: every row of the bonus table, then appendix E's LoRA runs."""
    rows = [(f"#{r['number']} {r['setting']}" if r.get("number") else r["setting"], r["key"])
            for r in book_bonus_rows()]
    try:
        from gptlib.study.experiments import experiments

        rows += [(e.description, e.key) for e in experiments("appendix E")]
    except (ImportError, ValueError):  # no registry of the appendix's runs
        pass
    return rows


def build_controls() -> dict[str, widgets.Widget]:
    """Every control by name: one per simple setting, plus the composite ones."""
    by_name = {f.name: f for f in setting_fields()}
    c = {name: _simple_control(by_name[name]) for name in SIMPLE_CONTROLS}
    c["trainable"] = widgets.Dropdown(options=TRAINABLE_OPTIONS, description="what trains", style=STYLE,
                                      layout=_layout())
    c["blocks"] = widgets.BoundedIntText(min=1, max=1000, value=2, description="N (last N blocks)", style=STYLE,
                                         layout=_layout())
    c["padding"] = widgets.Dropdown(options=PADDING_OPTIONS, description="padding", style=STYLE, layout=_layout())
    c["fixed_length"] = widgets.BoundedIntText(min=1, max=100_000, value=120, description="fixed length",
                                               style=STYLE, layout=_layout())
    c["train_limit"] = widgets.Text(value="all", description="training messages", style=STYLE, layout=_layout(),
                                    tooltip="'all' for the whole training split, or a number")
    c["seeds"] = widgets.BoundedIntText(min=1, max=50, value=1, description="repeat with N seeds", style=STYLE,
                                        layout=_layout(), tooltip="N runs: seed, seed+1, ...; the table then "
                                        "shows each setting's mean, spread and 95% interval")
    return c


class PanelView:
    """The widgets of :class:`gptlib.lab.ExperimentPanel`, as attributes, and their layout.
    The callbacks they call (``run``, ``stop``, ``_update_hints``, ...) are the panel's."""

    def _build_widgets(self) -> None:
        w = widgets
        self.controls = c = build_controls()
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
        c["padding"].observe(self._on_padding, names="value")
        c["speed"].observe(self._on_speed, names="value")
        self.hints, self.dropout_note, self.message = w.HTML(), w.HTML(), w.HTML()
        self.lora_note = w.HTML(layout=w.Layout(width="407px", max_width=FIT))
        self.lora_box = w.VBox([w.HTML("<b>LoRA</b> (adapters A, B beside every frozen Linear)"),
                                *(c[n] for n in LORA_CONTROLS[:3]), self.lora_note,
                                *(c[n] for n in LORA_CONTROLS[3:])],
                               layout=w.Layout(border_left="3px solid #9db4cf", padding="0 0 2px 6px",
                                               margin="0 0 4px 4px", width="420px", max_width=FIT))
        self.lora_box.add_class("gptlib-lora")
        self.advanced = w.Accordion(children=[w.HBox(
            [w.VBox([c["accumulation_steps"], c["ignore_index"]]), w.VBox([c["causal_mask"]])],
            layout=w.Layout(flex_flow="row wrap"))], titles=(ADVANCED_TITLE,), selected_index=None,
            layout=w.Layout(width="880px", max_width=FIT))
        self.advanced.add_class("gptlib-advanced")
        self.message.add_class("gptlib-message")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="steps", bar_style="info",
                                      layout=w.Layout(width="600px", max_width=FIT))
        self.curve_view = w.HTML(value=curves_html(empty_curves()))
        self.curve_view.add_class("gptlib-curves")
        self.runs_html = w.HTML()
        self.runs_html.add_class("gptlib-runs-table")
        self.every_column = w.Checkbox(value=False, description="every column", indent=False,
                                       layout=w.Layout(width="auto"))
        self.every_column.observe(lambda _: self._refresh_tables(), names="value")
        self.summary_html = w.HTML()
        self.book_html = w.HTML(value=book_html())
        self.book_html.add_class("gptlib-book-table")
        self.book_html.layout.display = "none"
        self.show_book = w.Checkbox(value=False, description="show the book's bonus results below mine",
                                    indent=False, layout=w.Layout(width="auto"))
        self.show_book.observe(self._toggle_book, names="value")
        self.book_choice = w.Dropdown(options=[("(choose one)", "")] + book_choices(), description="try the book's",
                                      style=STYLE, layout=w.Layout(width="700px", max_width=FIT))
        self.book_choice.observe(self._on_book_choice, names="value")
        self.csv_path = w.Text(value=str(Path(self.base.output) / "lab_runs.csv"), description="CSV file",
                               layout=w.Layout(width="460px", max_width=FIT))
        self.export_button = w.Button(description="Export CSV", icon="download")
        self.export_button.on_click(lambda _: self._export_clicked())
        self.overlay_runs = w.SelectMultiple(options=[], description="runs", rows=5, layout=w.Layout(width="320px"))
        self.overlay_metric = w.ToggleButtons(options=[("validation accuracy", "val_accs"),
                                                       ("validation loss", "val_losses")])
        self.overlay_view = w.HTML()
        self.overlay_view.add_class("gptlib-overlay")
        self.overlay_runs.observe(lambda _: self._draw_overlay(), names="value")
        self.overlay_metric.observe(lambda _: self._draw_overlay(), names="value")
        self.text = w.Textarea(value="Congratulations! You have won a free holiday. Call now to claim.",
                               description="message", layout=w.Layout(width="600px", max_width=FIT,
                                                                       height="60px"))
        self.classify_button = w.Button(description="Classify", icon="search", disabled=True)
        self.classify_button.add_class("gptlib-classify")
        self.classify_button.on_click(lambda _: self._classify_clicked())
        self.classify_out = w.HTML(value="<i>Run an experiment first; its model classifies the message.</i>")
        self.widget = self._layout_widgets()

    def _layout_widgets(self) -> widgets.Widget:
        w, c = widgets, self.controls
        left = w.VBox([*(c[n] for n in ("model_size", "weights", "trainable", "blocks")), self.lora_box,
                       *(c[n] for n in ("token", "padding", "fixed_length", "speed", "seeds"))])
        right = w.VBox([*(c[n] for n in ("epochs", "lr", "weight_decay", "drop_rate", "dropout_scope",
                                         "batch_size", "train_limit", "seed", "eval_freq")), self.dropout_note],
                       layout=w.Layout(max_width="100%"))
        columns = w.HBox([left, right], layout=w.Layout(flex_flow="row wrap"))  # narrow: one column
        settings = w.VBox([w.HTML("<h4>Settings</h4>"), self.book_choice, columns, self.advanced, self.hints])
        running = w.VBox([w.HBox([self.run_button, self.stop_button, self.status]), self.message,
                          self.progress, self.curve_view])
        table = w.VBox([w.HTML("<h4>All runs</h4>"), w.HBox([self.every_column, self.show_book]),
                        self.runs_html, self.summary_html, self.book_html,
                        w.HBox([self.csv_path, self.export_button]),
                        w.HTML("<b>Compare runs</b> (ctrl/shift-click to choose several)"),
                        w.HBox([self.overlay_runs, self.overlay_metric]), self.overlay_view])
        classify = w.VBox([w.HTML("<h4>Classify your own message</h4>"), self.text, self.classify_button,
                           self.classify_out])
        panel = w.VBox([w.HTML(CSS + "<h3>Fine-tuning lab</h3>"), settings, running, table, classify],
                       layout=w.Layout(max_width="100%"))
        panel.add_class("gptlib-lab")
        return panel

    # -- a run waiting for its turn on a shared machine (gptlib.support.run_slots) ----------------
    def _on_queued(self, event: Any) -> None:
        k = event.extra.get("slots", 1)
        self.status.value = (f"waiting for its turn: this machine runs {k} experiment{'s' if k != 1 else ''} "
                             "at a time for the whole class (Stop cancels)...")
        self._say("Queued: the run starts as soon as one of the class's runs ends.")

    def _on_cancelled(self, event: Any) -> None:
        self.progress.bar_style = ""
        self.status.value = "stopped before its turn came: nothing ran"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget, with a line of text (not ``VBox(children=...``) for a viewer that cannot
        show it: what it is, and where its results are shown without widgets."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict) and "text/plain" in bundle:
            bundle["text/plain"] = WITHOUT_WIDGETS
        return bundle
