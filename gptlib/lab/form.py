"""The lab panel's settings form: its controls to and from :class:`FinetuneConfig`, the
book's bonus settings, and the hints shown before a run (what is refused, what is slow,
where dropout acts, how much memory it needs)."""

from __future__ import annotations

import dataclasses
import html
from typing import Any

from traitlets import TraitError

from gptlib.finetune import FinetuneConfig
from gptlib.lab.bonus import book_setting
from gptlib.lab.checks import check_settings, memory_check, pretrained_available
from gptlib.lab.controls import (
    ADVANCED_CONTROLS,
    LABELS,
    LORA_CONTROLS,
    OWN_DATA,
    SIMPLE_CONTROLS,
    form_values,
    lora_scale_note,
    padding_settings,
    trainable_value,
    training_size,
)
from gptlib.lab.view import ADVANCED_TITLE
from gptlib.models import any_config, canonical_name
from gptlib.settings import PRESETS, setting_fields

# What "try the book's" resets to the book's before it applies an experiment's change: every
# setting that says what the experiment is (not how long or how fast it trains).
BOOK_RESET = ("model_size", "weights", "trainable", "token", "padding", "max_length", "batch_size",
              "causal_mask", "accumulation_steps", "ignore_index", "lora_rank", "lora_alpha", "lora_scaling",
              "lora_head", "lora_merged")
# The controls that say which experiment the settings are: one changed by hand, and the "try
# the book's" menu no longer names the experiment.
BOOK_CONTROLS = ("model_size", "weights", "trainable", "blocks", "token", "padding", "fixed_length",
                 "batch_size", "causal_mask", "accumulation_steps", "ignore_index", *LORA_CONTROLS)


def book_changes(key: str) -> dict[str, Any]:
    """The FinetuneConfig settings (the change from the book's baseline) of one of the book's
    experiments: a bonus row's key, or appendix E's ("appendix_e", "appendix_e_print")."""
    try:
        from gptlib.study.experiments import experiment
    except ImportError:  # no registry: the bonus table's own settings
        experiment = None
    if experiment is not None:
        try:
            return dict(experiment(key).settings)
        except KeyError:  # not in the registry: book_setting names the valid keys
            pass
    changes = book_setting(key)
    if changes is None:
        raise ValueError(f"The bonus experiment {key!r} needs code the panel does not have.")
    return dict(changes)


def _context(model_size: str) -> int:
    return any_config(canonical_name(model_size))["context_length"]


class SettingsForm:
    """Settings to and from the controls (``self.controls``, made by :class:`PanelView`)."""

    def load_config(self, cfg: FinetuneConfig) -> None:
        """Set every control from a FinetuneConfig; the settings without a control (data,
        device, eval_iter, output folder) are taken from it too, so ``config()`` gives it back."""
        values = {name: getattr(cfg, name) for name in SIMPLE_CONTROLS}
        values.update(model_size=canonical_name(cfg.model_size), trainable=cfg.trainable, padding=cfg.padding,
                      max_length=cfg.max_length, train_limit=cfg.train_limit)
        self.base = dataclasses.replace(cfg)
        self._set_controls(form_values(values, _context(cfg.model_size)))
        self._open_advanced_if_changed()

    def set(self, **values: Any) -> None:
        """Change settings by name, e.g. ``set(epochs=3, token="first", trainable="last_2_blocks",
        padding="batch")``. Takes FinetuneConfig's names and values (``trainable="lora"``,
        ``padding="none"``, ``max_length=1024``, ``causal_mask=False``, ``lora_rank=8``, ...;
        ``device`` or ``eval_iter``, which have no control, go into the panel's base settings) and
        the panel's own: ``padding`` "longest", "context", "fixed" (with ``fixed_length``) or an
        int length, ``blocks`` for "last N blocks", ``train_limit`` None/0/"all" for every message."""
        own = sorted(name for name in OWN_DATA if values.pop(name, None) is not None)
        if own:
            raise ValueError(f"The lab trains on the SMS data; {own} (your own CSV files) are for "
                             "`python -m gptlib finetune --csv ...`.")
        no_control = {f.name for f in setting_fields()} - set(self.controls) - {"max_length"}
        base = {name: values.pop(name) for name in list(values) if name in no_control}
        model = values.get("model_size", self.controls["model_size"].value)
        if "model_size" in values:
            values["model_size"] = canonical_name(model)
        values = form_values(values, _context(model))
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"No control(s) {sorted(unknown)}; the panel has {sorted(self.controls)}.")
        if base:
            self.base = dataclasses.replace(self.base, **base)
        self._set_controls(values)

    def _set_controls(self, values: dict[str, Any]) -> None:
        if "model_size" in values:  # first: the other values are checked against the model
            values = {"model_size": values["model_size"], **values}
        self._setting = True  # settings given by name are taken as they are: no preset applies
        try:
            for name, value in values.items():
                try:
                    self.controls[name].value = value
                except TraitError as err:
                    raise ValueError(f"Cannot set {name} to {value!r}: {err}") from None
        finally:
            self._setting = False

    def _on_speed(self, change: dict[str, Any]) -> None:
        """Choosing speed "fast" by hand takes the fast preset (``settings.PRESETS``): its token,
        padding and dropout scope show in their controls, and can be changed after."""
        preset = PRESETS.get(change["new"])
        if getattr(self, "_setting", False) or not preset:
            return
        values = form_values({k: v for k, v in preset.items() if k != "speed"},
                             _context(self.controls["model_size"].value))
        moved = {k: v for k, v in values.items() if k in self.controls and self.controls[k].value != v}
        self._set_controls(moved)
        if moved:
            self._say(f"Speed '{change['new']}' takes its preset: " + ", ".join(f"{k} {v}" for k, v in moved.items())
                      + " (change them after if you like).", "info")

    def apply_book_setting(self, key: str) -> str:
        """Set the controls for one of the book's experiments (a key of
        :func:`gptlib.lab.book_bonus_results`, or appendix E's "appendix_e"/"appendix_e_print"):
        the book's baseline for what the experiment is (model, weights, what trains, token,
        padding, batch, mask, LoRA), then the experiment's change. Epochs, learning rate, speed
        and the rest stay as they are, unless the experiment sets them.

        Where the book's pretrained weights are neither cached nor reachable
        (:func:`gptlib.lab.checks.pretrained_available`), the panel's own weights stay (and, when
        they are random, its model too, unless the experiment names one). Returns one sentence:
        which settings changed, and what was kept and why (the menu shows it)."""
        changes = book_changes(key)
        book = FinetuneConfig()
        reset = {name: getattr(book, name) for name in BOOK_RESET}
        model, kept = changes.get("model_size", book.model_size), ""
        if changes.get("weights", book.weights) == "pretrained" and self.base.weights != "pretrained":
            reachable, why = pretrained_available(model)
            if not reachable:  # the panel's own weights (and model, unless the experiment names one)
                if "model_size" not in changes:
                    reset["model_size"] = model = self.base.model_size
                    if changes.get("max_length") == _context(book.model_size):  # "the model's context"
                        changes.update(padding="context", max_length=None)
                reset["weights"] = changes["weights"] = self.base.weights
                kept = (f" Kept {self.base.weights} weights ({model}): {why}, so the numbers will not be "
                        "the book's.")
        before = self._shown_values()
        self.set(**reset)
        self.set(**changes)
        self._open_advanced_if_changed()
        after = self._shown_values()
        self._book_values = {name: self.controls[name].value for name in BOOK_CONTROLS}
        changed = [f"{label} {before[label]} -> {value}" if label in before else f"{label} {value}"
                   for label, value in after.items() if label not in before or before[label] != value]
        return ("Changed " + ", ".join(changed) if changed else "Changed nothing (already these settings)") \
            + "." + kept

    def _shown_values(self) -> dict[str, Any]:
        """The visible controls' values by label (a hidden "N blocks" or fixed length left out)."""
        c, out = self.controls, {}
        for name, control in c.items():
            hidden = (name == "blocks" and c["trainable"].value != "last_n") or (
                name == "fixed_length" and c["padding"].value != "fixed") or (
                name in LORA_CONTROLS and c["trainable"].value != "lora")
            if not hidden:
                out[control.description] = control.value
        return out

    def _on_book_choice(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._applying_book = True
            try:
                what = self.apply_book_setting(change["new"])
            finally:
                self._applying_book = False
            self.book_key = change["new"]
            label = {v: k for k, v in self.book_choice.options}[change["new"]]
            self._say(f"Settings of the book's experiment '{label}'. {what} Epochs, learning rate and "
                      "the rest as they were, unless named.", "warning" if "Kept" in what else "info")

    def _forget_book_choice(self) -> None:
        """Settings of the experiment changed by hand: the menu no longer names it."""
        if getattr(self, "_applying_book", False) or not self.book_key:
            return
        if any(self.controls[name].value != value for name, value in getattr(self, "_book_values", {}).items()):
            self.book_key = ""
            self.book_choice.value = ""

    def _on_padding(self, change: dict[str, Any]) -> None:
        """No padding keeps each message at its own length: one message per batch."""
        if change["new"] == "none" and self.controls["batch_size"].value != 1:
            self.controls["batch_size"].value = 1

    def _open_advanced_if_changed(self) -> None:
        if _advanced_changes(self.controls):
            self.advanced.selected_index = 0

    def config(self) -> FinetuneConfig:
        """The FinetuneConfig the controls describe (not yet checked). ValueError for a
        training-messages entry that is neither 'all' nor a whole number."""
        c = self.controls
        model = canonical_name(c["model_size"].value)
        limit = c["train_limit"].value.strip().lower()
        if limit in ("all", "", "0", "none"):
            train_limit = None
        elif limit.isdigit():
            train_limit = int(limit)
        else:
            raise ValueError(f"training messages must be 'all' or a whole number; got {c['train_limit'].value!r}.")
        values = {name: c[name].value for name in SIMPLE_CONTROLS}
        values.update(model_size=model, dropout_scope=None if values["dropout_scope"] == "auto" else
                      values["dropout_scope"], trainable=trainable_value(c["trainable"].value, c["blocks"].value),
                      train_limit=train_limit,
                      **padding_settings(c["padding"].value, any_config(model)["context_length"],
                                         c["fixed_length"].value))
        return dataclasses.replace(self.base, **values)

    def check(self) -> tuple[list[str], list[str], FinetuneConfig | None]:
        """(problems, warnings, config) for the current settings: problems refuse a run."""
        try:
            cfg = self.config()
        except ValueError as err:
            return [str(err)], [], None
        n_blocks = self.controls["blocks"].value if self.controls["trainable"].value == "last_n" else None
        return check_settings(cfg, n_blocks)

    def _update_hints(self, _change: Any = None) -> None:
        c = self.controls
        c["blocks"].layout.display = None if c["trainable"].value == "last_n" else "none"
        c["fixed_length"].layout.display = None if c["padding"].value == "fixed" else "none"
        self.lora_box.layout.display = None if c["trainable"].value == "lora" else "none"
        self.lora_note.value = ('<span class="gptlib-msg-info" style="font-size: 12px">' + html.escape(
            lora_scale_note(c["lora_rank"].value, c["lora_alpha"].value, c["lora_scaling"].value)) + "</span>")
        self._forget_book_choice()
        changed = _advanced_changes(c)
        self.advanced.set_title(0, ADVANCED_TITLE + (f" (changed: {', '.join(changed)})" if changed else ""))
        problems, notes, cfg = self.check()
        lines = [f'<span class="gptlib-msg-error">&#10007; {html.escape(p)}</span>' for p in problems]
        lines += [f'<span class="gptlib-msg-warning">&#9888; {html.escape(n)}</span>' for n in notes]
        if cfg is not None:
            n_train = training_size(cfg)
            if n_train is not None:
                seeds = c["seeds"].value
                runs = f" per run, {seeds} runs" if seeds > 1 else " in all"
                steps = cfg.epochs * (n_train // cfg.batch_size)
                updates = "" if cfg.accumulation_steps == 1 else (
                    f" ({-(-steps // cfg.accumulation_steps)} optimizer updates, each of "
                    f"{cfg.accumulation_steps * cfg.batch_size} messages)")
                lines.append(f"{n_train} training messages, {steps} steps{updates}{runs}.")
            lines.append(html.escape(memory_check(cfg)[0]))
        self.hints.value = "<br>".join(lines)
        self.dropout_note.value = _dropout_note(cfg)


def _advanced_changes(controls: dict[str, Any]) -> list[str]:
    """The advanced settings that differ from the book's, as short phrases."""
    book = FinetuneConfig()
    out = []
    for name in ADVANCED_CONTROLS:
        value = controls[name].value
        if value != getattr(book, name):
            out.append("causal mask off" if name == "causal_mask" and not value else
                       f"{LABELS.get(name, name)} {value}")
    return out


def _dropout_note(cfg: FinetuneConfig | None) -> str:
    """One line under the dropout control: where dropout acts in this run, and what that costs."""
    if cfg is None or cfg.drop_rate == 0:
        return ""
    used = cfg.effective()
    if used.dropout_scope == "trainable":
        why = " (fast mode's choice)" if cfg.dropout_scope is None else ""
        text = (f"Dropout {cfg.drop_rate:g} acts only in the parts that train{why}: the frozen blocks stay "
                "deterministic, so their outputs are computed once and reused.")
    else:
        text = (f"Dropout {cfg.drop_rate:g} acts in every block, frozen ones too (the book's): their outputs "
                "change every step, so nothing is reused and each step computes the whole model.")
    return f'<span class="gptlib-msg-info" style="font-size: 12px">{html.escape(text)}</span>'
