"""The lab panel's settings form: its controls to and from :class:`FinetuneConfig`, the
book's bonus settings, and the hints shown before a run (what is refused, what is slow,
where dropout acts)."""

from __future__ import annotations

import dataclasses
import html
from typing import Any

from traitlets import TraitError

from gptlib.finetune import FinetuneConfig
from gptlib.lab.bonus import book_setting, book_setting_name
from gptlib.lab.checks import check_settings
from gptlib.lab.controls import (
    padding_choice,
    padding_settings,
    trainable_choice,
    trainable_value,
    training_size,
)
from gptlib.lab.view import SIMPLE_CONTROLS
from gptlib.model import get_config, resolve_preset


class SettingsForm:
    """Settings to and from the controls (``self.controls``, made by :class:`PanelView`)."""

    def load_config(self, cfg: FinetuneConfig) -> None:
        """Set every control from a FinetuneConfig."""
        c = self.controls
        model = resolve_preset(cfg.model_size)
        choice, n_blocks = trainable_choice(cfg.trainable)
        padding = padding_choice(cfg.padding, cfg.max_length, get_config(model)["context_length"])
        values = {name: getattr(cfg, name) for name in SIMPLE_CONTROLS}
        values.update(model_size=model, dropout_scope=cfg.dropout_scope or "auto", trainable=choice,
                      blocks=n_blocks, padding=padding, train_limit=str(cfg.train_limit or "all"))
        if padding == "fixed":
            values["fixed_length"] = cfg.max_length
        for name, value in values.items():
            c[name].value = value

    def set(self, **values: Any) -> None:
        """Change controls by name, e.g. ``set(epochs=3, token="first", trainable="last_2_blocks",
        padding="batch")``. ``trainable`` takes FinetuneConfig values too; ``padding`` takes
        "longest", "batch", "context" or "fixed" (with ``fixed_length``), or an int length;
        ``train_limit`` a number, or None/0/"all" for the whole split."""
        if "trainable" in values:
            choice, n_blocks = trainable_choice(values.pop("trainable"))
            self.controls["trainable"].value = choice
            if choice == "last_n":
                self.controls["blocks"].value = n_blocks
        if "padding" in values and isinstance(values["padding"], int):
            self.controls["fixed_length"].value = values.pop("padding")
            self.controls["padding"].value = "fixed"
        if "train_limit" in values:
            values["train_limit"] = str(values["train_limit"] or "all")
        if "dropout_scope" in values:
            values["dropout_scope"] = values["dropout_scope"] or "auto"
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
        the experiment's change (see :func:`gptlib.lab.book_bonus_results`)."""
        changes = book_setting(key)
        if changes is None:
            raise ValueError(f"The bonus experiment {key!r} needs code the panel does not have.")
        book = FinetuneConfig()
        self.set(model_size=book.model_size, weights=book.weights, trainable=book.trainable, token=book.token,
                 padding="longest", batch_size=book.batch_size)
        self.set(**changes)

    def _on_book_choice(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.book_key = change["new"]
            self.apply_book_setting(change["new"])
            self._say(f"Settings of the book's bonus experiment '{book_setting_name(change['new'])}' "
                      "(epochs, learning rate and the rest unchanged).", "info")

    def config(self) -> FinetuneConfig:
        """The FinetuneConfig the controls describe (not yet checked). ValueError for a
        training-messages entry that is neither 'all' nor a whole number."""
        c = self.controls
        model = resolve_preset(c["model_size"].value)
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
                      **padding_settings(c["padding"].value, get_config(model)["context_length"],
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
        problems, notes, cfg = self.check()
        lines = [f'<span class="gptlib-msg-error">&#10007; {html.escape(p)}</span>' for p in problems]
        lines += [f'<span class="gptlib-msg-warning">&#9888; {html.escape(n)}</span>' for n in notes]
        if cfg is not None:
            n_train = training_size(cfg)
            if n_train is not None:
                seeds = c["seeds"].value
                runs = f" per run, {seeds} runs" if seeds > 1 else " in all"
                lines.append(f"{n_train} training messages, {cfg.epochs * (n_train // cfg.batch_size)} steps{runs}.")
        self.hints.value = "<br>".join(lines)
        self.dropout_note.value = _dropout_note(cfg)


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
