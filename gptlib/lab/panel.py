"""The experiment lab's panel: Run/Stop, live curves, the runs table, the classifier box.

The runs themselves belong to a :class:`gptlib.lab.engine.RunEngine`; the panel subscribes to
its events and redraws. Its widgets and layout are :class:`gptlib.lab.view.PanelView`, its
settings form :class:`gptlib.lab.form.SettingsForm`. These (and :mod:`gptlib.lab.explorers`)
are the only modules that import ipywidgets; ``import gptlib`` does not load them::

    from gptlib.lab import ExperimentPanel
    panel = ExperimentPanel(load_profile())   # or ExperimentPanel() for the book's settings
    panel                                     # shows it in Jupyter
    panel.set(token="last_real", epochs=3)
    panel.run(wait=True)                      # what the Run button does, but waiting for the end
    panel.runs                                # a DataFrame with one row per finished run
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

from gptlib.data import CLASS_NAMES
from gptlib.finetune import FinetuneConfig
from gptlib.lab.charts import curves_html, svg_chart
from gptlib.lab.controls import config_from_profile, training_size
from gptlib.lab.engine import LabEvent, RunEngine, empty_curves
from gptlib.lab.form import SettingsForm
from gptlib.lab.snapshot import LabSnapshot, lab_snapshot
from gptlib.lab.tables import book_html, runs_frame, runs_html, summary_html
from gptlib.lab.view import PanelView
from gptlib.tokenizer import get_tokenizer
from gptlib.train import predict_proba


class ExperimentPanel(SettingsForm, PanelView):
    """Controls, Run/Stop, progress, live curves, a table of runs and a classifier box.

    ``defaults``: a :class:`FinetuneConfig` (None: the book's settings, data splits written to
    ``runs/lab``) or a notebook profile (``gptlib.notebook.load_profile()``). Settings without
    a control (data, device, eval_iter, output folder) come from it. Runs use ``save=False``.
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
        self.engine = RunEngine(base)
        self.engine.subscribe(self._on_event)
        self.last_config: FinetuneConfig | None = None
        self.last_message = ""
        self._tokenizer = None
        self._live_title = "this run"
        self.book_key = ""  # the book's bonus row the settings came from ("try the book's"), if any
        self._build_widgets()
        self.load_config(base)
        self._refresh_tables()
        self._update_hints()
        self.engine.warm_up(base)  # the base model and torch's machinery, while the student reads

    # -- the engine's state, read through ---------------------------------------------------------
    runs = property(lambda self: self.engine.runs, doc="One row per finished (or stopped) run.")
    histories = property(lambda self: self.engine.histories, doc="Each run's curves, by run number.")
    curves = property(lambda self: self.engine.curves, doc="The current run's curves.")
    result = property(lambda self: self.engine.result, doc="The latest run's FinetuneResult.")
    model = property(lambda self: self.engine.model, doc="The latest run's classifier.")
    last_error = property(lambda self: self.engine.last_error)
    steps_done = property(lambda self: self.engine.steps_done)
    running = property(lambda self: self.engine.running)

    # -- messages -----------------------------------------------------------------------------
    def _say(self, text: str, level: str = "info") -> None:
        self.last_message = text
        body = html.escape(text).replace("\n", "<br>")
        self.message.value = f'<div class="gptlib-msg-{level}" style="white-space: normal">{body}</div>'

    # -- running --------------------------------------------------------------------------------
    def run(self, wait: bool = False) -> bool:
        """Start a run (N runs with "repeat with N seeds") with the current settings: what the
        Run button does. False, with a message in the panel, when the settings are refused or a
        run is going; True when it started. ``wait=True`` returns only after the last run ended."""
        if self.running:
            self._say("A run is already going: wait for it, or press Stop.", "warning")
            return False
        problems, notes, cfg = self.check()
        if problems or cfg is None:
            self.status.value = "not run"
            self._say("Not run: " + " ".join(problems), "error")
            return False
        self._say(" ".join(["Running..."] + notes), "warning" if notes else "info")
        self.last_config = cfg
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "starting: reading data, building the model..."
        if not self.engine.start(cfg, seeds=self.controls["seeds"].value):
            self._say("A run is already going: wait for it, or press Stop.", "warning")
            return False
        if wait:
            self.wait()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current runs to end; True when none is going any more."""
        return self.engine.wait(timeout)

    def stop(self) -> bool:
        """Ask the current run to stop after its current step (what the Stop button does).

        The run still measures its final accuracies, keeps its curves, becomes a row of the
        table (``stopped_early`` "yes"), and its model can classify messages; further seeds are
        skipped. Returns True when a run was going."""
        if not self.engine.stop():
            return False
        self.stop_button.disabled = True
        self.status.value = "stopping after this step..."
        return True

    def _on_event(self, event: LabEvent) -> None:  # from the run's thread
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def _title(self, event: LabEvent) -> str:
        seeds = event.extra.get("seeds", 1) if event.extra else 1
        return f"run {event.run}" + (f" (seed {event.config.seed})" if seeds > 1 and event.config else "")

    def _on_started(self, event: LabEvent) -> None:
        self.classify_button.disabled = True  # the previous model is let go while this one trains
        self._live_title = self._title(event)
        self.curve_view.value = curves_html(empty_curves(), self._live_title)
        n_train = training_size(event.config)
        self.progress.max = max(event.config.epochs * (n_train // event.config.batch_size), 1) if n_train else 1
        self.progress.value, self.progress.bar_style = 0, "info"
        part = f" {event.extra['seed_index']}/{event.extra['seeds']}" if event.extra.get("seeds", 1) > 1 else ""
        self.status.value = f"starting run{part}: reading data, building the model..."

    def _on_step(self, event: LabEvent) -> None:
        done = self.engine.steps_done
        self.progress.max = max(self.progress.max, done)
        self.progress.value = done
        self.status.value = (f"epoch {event.train.epoch}, step {done}/{self.progress.max}, "
                             f"{event.train.examples_seen:,} examples seen")

    def _on_eval(self, event: LabEvent) -> None:
        self._draw_live()

    def _on_epoch(self, event: LabEvent) -> None:
        t = event.train
        if t.epoch == 1 and event.config is not None:
            self.progress.max = max((t.global_step + 1) * event.config.epochs, self.engine.steps_done)
        self._draw_live()

    def _draw_live(self) -> None:
        curves = {k: list(v) for k, v in self.curves.items()}
        self.curve_view.value = curves_html(curves, self._live_title)

    def _on_finished(self, event: LabEvent) -> None:
        stopped, result = event.extra.get("stopped", False), event.result
        done = "stopped early" if stopped else "done"
        compared = ""
        if self.book_key:  # the run was set up from a row of the book's table: how far from it?
            group = int(self.runs.iloc[-1]["group"])
            compared = "\n" + self.engine.compare_with_book(group, self.book_key) + (
                " The book's numbers come from pretrained weights." if event.config.weights == "random" else "")
        self._say(f"Run {event.run} {done}: test accuracy {result.test_accuracy:.2%} "
                  f"({result.examples_seen:,} examples seen, {result.seconds:.1f} s).{compared}", "info")
        self.classify_button.disabled = self.model is None
        self._refresh_tables(select=event.run)
        self.progress.bar_style = "warning" if stopped else "success"  # last: the table is in
        self.status.value = f"{done} in {result.seconds:.1f} s"
        if self.model is not None:
            self._classify_clicked()

    def _on_failed(self, event: LabEvent) -> None:
        self.progress.bar_style = "danger"
        self.status.value = "failed"
        self._say(event.message, "error")

    def _on_idle(self, event: LabEvent) -> None:
        self.run_button.disabled, self.stop_button.disabled = False, True

    # -- tables, overlay, export ------------------------------------------------------------------
    def runs_html_table(self) -> str:
        """The table of runs as HTML (accuracies in percent)."""
        return runs_html(self.runs, self.engine.varying_settings(), self.every_column.value)

    def comparison_html(self) -> str:
        """The runs table with the book's bonus table below it, as HTML."""
        return self.runs_html_table() + self._summary_table() + book_html()

    def snapshot(self) -> LabSnapshot:
        """The lab's results for a reader without widgets (GitHub, an HTML export, an untrusted
        notebook): a PNG of every run's loss and accuracy curves and the runs table as plain
        HTML (notebooks 06 and 07 show one after each run; see :mod:`gptlib.lab.snapshot`)."""
        labels, varying = {int(r): self._run_label(int(r)) for r in self.runs["run"]}, self.engine.varying_settings()
        return lab_snapshot(self.histories, labels, runs_html(self.runs, varying, live=False) + self._summary_table(),
                            runs_frame(self.runs, varying) if not self.runs.empty else None)

    def _summary_table(self) -> str:
        return summary_html(self.engine.summary(), self.engine.test_messages()) if not self.runs.empty else ""

    def _refresh_tables(self, select: int | None = None) -> None:
        self.runs_html.value = self.runs_html_table()
        self.summary_html.value = self._summary_table()
        labels = [(self._run_label(int(r)), int(r)) for r in self.runs["run"]]
        chosen = tuple(v for v in self.overlay_runs.value if v in dict(labels).values())
        self.overlay_runs.options = labels
        if select is not None:
            chosen = tuple(sorted(set(chosen) | {select}))
        self.overlay_runs.value = chosen
        self._draw_overlay()

    def _run_label(self, run_id: int) -> str:
        row = self.runs[self.runs["run"] == run_id].iloc[0]
        epochs = len(self.histories.get(run_id, {}).get("val_accs", [])) if row["stopped_early"] == "yes" \
            else row["epochs"]
        stopped = f" of {row['epochs']} (stopped)" if row["stopped_early"] == "yes" else ""
        return f"#{run_id} {row['trainable']}, {row['token']}, {row['padding']}, {epochs} ep{stopped}, seed {row['seed']}"

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
        return self.engine.export_csv(path)

    def _export_clicked(self) -> None:
        try:
            path = self.export_csv(self.csv_path.value)
        except (OSError, ValueError) as err:
            self._say(f"Could not write the CSV file: {err}", "error")
        else:
            self._say(f"Wrote {len(self.runs)} run(s) to {path}", "info")

    # -- classifying ------------------------------------------------------------------------------
    def classify(self, text: str) -> dict[str, float]:
        """Class probabilities of a message under the latest run's model, as ``{class: p}``."""
        model, result = self.model, self.result  # read once: the run's thread may let them go
        if model is None or result is None:
            if self.running:
                raise RuntimeError("A run is training: its model classifies once it ends "
                                   "(the lab keeps one model in memory at a time).")
            raise RuntimeError("No model yet: run an experiment first.")
        used = result.config
        max_length = None if used.get("padding") in ("batch", "none") else result.max_length
        self._tokenizer = self._tokenizer or get_tokenizer()
        device = next(model.parameters()).device
        probs = predict_proba(text, model, self._tokenizer, device, max_length=max_length,
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
        self.classify_out.value = f"<b>{html.escape(best)}</b> (run {self.engine.last_run}){bars}"
