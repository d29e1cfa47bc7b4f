"""One run's settings, in one record: :class:`FinetuneConfig`. The defaults are the book's.

Each field carries what the rest of gptlib needs to show it, in its ``metadata``:

* ``help``: one line, for ``python -m gptlib finetune --help`` and the lab's tooltips;
* ``choices``: the values it takes, where they are few;
* ``parse``: how a command-line string becomes a value (``int``, ``float``, ``str``, ``bool``
  (true/false, yes/no, on/off, 1/0), the optional forms ``int?``/``str?``, where "none"
  means None, and ``trainable``);
* ``table``: False for settings that do not describe the experiment (where files go).

The command line's flags (:func:`gptlib.cli`), the lab's controls and its runs table's
setting columns (:mod:`gptlib.lab`) are all read from these fields, so a new setting is
added here once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from gptlib.classifier import DROPOUT_SCOPES, TOKEN_CHOICES, TRAINABLE_HELP, trainable_blocks
from gptlib.lora import LORA_HEADS, LORA_SCALINGS
from gptlib.model import MODEL_CONFIGS
from gptlib.models import OPEN_MODELS, any_config, canonical_name, has_weights, is_open_model

# How a run computes: "book" the plain computation; "exact" the same numbers, faster; "fast"
# also not bit-exact tricks (gptlib.speed applies them; this record only names them).
SPEEDS = ("book", "exact", "fast")
# Named presets, each a set of settings shown in the record it makes (never applied behind a
# run's back). "fast": fast mode's computation with the choices that let it reuse the most:
# the last real token of messages padded per batch (with pretrained weights the book's bonus
# table has it more accurate), dropout only in the parts that train.
PRESETS: dict[str, dict[str, Any]] = {
    "book": {},
    "fast": {"speed": "fast", "token": "last_real", "padding": "batch", "dropout_scope": "trainable"},
}


class SettingError(ValueError):
    """A setting whose value cannot work; the message starts with (or names) the setting."""


def _s(default: Any, help: str, parse: str, choices: tuple | None = None, table: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "parse": parse, "choices": choices, "table": table})


@dataclass
class FinetuneConfig:
    """Settings of a fine-tuning run; the defaults are the book's."""

    model_size: str = _s("gpt2-small (124M)", "model preset: GPT-2's, or an open model's (Qwen3, Llama 3.2; "
                         "see gptlib.models)", "str", tuple(MODEL_CONFIGS) + OPEN_MODELS)
    weights: str = _s("pretrained", "OpenAI's weights, or random ones (offline)", "str", ("pretrained", "random"))
    epochs: int = _s(5, "passes over the training set", "int")
    lr: float = _s(5e-5, "AdamW learning rate", "float")
    weight_decay: float = _s(0.1, "AdamW weight decay", "float")
    drop_rate: float = _s(0.0, "dropout rate (see dropout_scope for where)", "float")
    batch_size: int = _s(8, "messages per batch", "int")
    trainable: str | int = _s("last_block", f"what trains: {TRAINABLE_HELP}", "trainable")
    token: str = _s("last", "which position's logits are read", "str", TOKEN_CHOICES)
    padding: str = _s("max_length", "pad to the longest training message (book), per batch, or not at all "
                      "(none: each message at its own length; needs batch_size 1)", "str",
                      ("max_length", "batch", "none"))
    max_length: int | None = _s(None, "pad/truncate to this many tokens (none: the longest training "
                                "message; 1024: the book's exercise 6.1)", "int?")
    data: str | None = _s(None, "a local SMSSpamCollection file, zip or folder (none: download; "
                          "GPTLIB_DATA_DIR works too)", "str?", table=False)
    data_url: str | None = _s(None, "where to download the SMS zip from, e.g. a mirror (none: the book's UCI "
                              "URL, then its backup; GPTLIB_DATA_URL works too)", "str?", table=False)
    download_timeout: float = _s(60.0, "seconds each download waits for the server (data and weights)", "float",
                                 table=False)
    csv: str | None = _s(None, "your own data: one CSV with Label and Text columns (any number of classes), "
                         "split 70/10/20 the book's way", "str?", table=False)
    train_csv: str | None = _s(None, "your own training CSV (Label, Text); with --val-csv and --test-csv",
                               "str?", table=False)
    val_csv: str | None = _s(None, "your own validation CSV (Label, Text)", "str?", table=False)
    test_csv: str | None = _s(None, "your own test CSV (Label, Text)", "str?", table=False)
    seed: int = _s(123, "seed of the random weights, the head, the batch order and training", "int")
    device: str = _s("auto", "auto | cpu | cuda | mps", "str", table=False)
    output: str = _s("runs/finetune", "folder for metrics.json and classifier.pth", "str", table=False)
    figures: str | None = _s(None, "also copy the loss/accuracy plots to this folder, e.g. figures (none: "
                             "they stay in OUTPUT/plots only)", "str?", table=False)
    eval_freq: int = _s(50, "steps between loss evaluations", "int")
    eval_iter: int = _s(5, "batches per evaluation", "int")
    train_limit: int | None = _s(None, "use only the first N training messages (none: all)", "int?")
    speed: str = _s("exact", "book: the book's plain computation; exact: the same results, faster, by "
                    "reusing frozen activations; fast: also keeps them in bfloat16 and uses fused AdamW, "
                    "not bit-exact (the command line's --speed fast also takes the fast preset: last real "
                    "token, per-batch padding, dropout only where training happens, unless given)",
                    "str", SPEEDS)
    dropout_scope: str | None = _s(None, "where dropout acts: all (book: frozen blocks too) or trainable "
                                   "(only the parts that train); none: trainable in fast mode, else all",
                                   "str?", DROPOUT_SCOPES)
    causal_mask: bool = _s(True, "mask attention to later tokens (false: every token sees every token, "
                           "the bonus table's row 17)", "bool")
    accumulation_steps: int = _s(1, "batches whose gradients add up before each optimizer step (batch 1 "
                                 "with 8 steps makes batch 8's updates)", "int")
    ignore_index: int = _s(-100, "target label that the loss ignores (PyTorch's default -100; the bonus "
                           "table's row 18 uses 50256)", "int")
    lora_rank: int = _s(16, "LoRA: rank r of the adapters (with trainable lora)", "int")
    lora_alpha: float = _s(16.0, "LoRA: alpha", "float")
    lora_scaling: str = _s("alpha", "LoRA: the adapters' scale: alpha (the printed book, its bonus script "
                           "and llms-from-scratch 1.0.19) or alpha/rank (appendix E's notebook today)", "str",
                           LORA_SCALINGS)
    lora_head: str = _s("adapter", "LoRA: the new head gets an adapter only (appendix E) or trains in full "
                        "as well (the bonus script)", "str", LORA_HEADS)
    lora_merged: bool = _s(False, "LoRA: fold the adapter into the weight before each matmul (the bonus "
                           "script's lora_alternative; the same numbers)", "bool")

    @classmethod
    def preset(cls, name: str, **changes: Any) -> FinetuneConfig:
        """The settings of a named preset (see ``PRESETS``), with ``changes`` on top, e.g.
        ``FinetuneConfig.preset("fast", epochs=1)``: token, padding and dropout scope show in the
        record like any setting."""
        if name not in PRESETS:
            raise SettingError(f"Unknown preset {name!r}; use one of {tuple(PRESETS)}.")
        return cls.from_dict({**PRESETS[name], **changes})

    def effective(self) -> FinetuneConfig:
        """The settings a run uses: the model's full preset name, and where ``dropout_scope`` is
        None, its default: "trainable" at speed "fast" (the frozen part stays reusable), else
        "all" (the book's). Nothing else changes: the token and padding are the record's."""
        out = replace(self, model_size=canonical_name(self.model_size))
        if out.dropout_scope is None:
            out = replace(out, dropout_scope="trainable" if self.speed == "fast" else "all")
        return out

    def check(self) -> None:
        """Raise ValueError for settings that cannot work, naming the setting and its value."""
        try:
            model = canonical_name(self.model_size)
        except ValueError as err:
            raise SettingError(f"model_size: {err}") from None
        for f in fields(self):
            choices, value = f.metadata["choices"], getattr(self, f.name)
            if choices and f.name != "model_size" and value not in choices and \
                    not (value is None and f.metadata["parse"].endswith("?")):
                raise SettingError(f"{f.name} must be one of {choices}; got {value!r}.")
        for name in ("epochs", "batch_size", "eval_freq", "eval_iter", "accumulation_steps", "lora_rank"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SettingError(f"lr must be a positive number; got {self.lr}.")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise SettingError(f"weight_decay must be a number >= 0; got {self.weight_decay}.")
        if not (self.download_timeout > 0 and math.isfinite(self.download_timeout)):
            raise SettingError(f"download_timeout must be a number of seconds above 0; got {self.download_timeout}.")
        if self.seed < 0:
            raise SettingError(f"seed must be 0 or more; got {self.seed}.")
        if not (self.lora_alpha > 0 and math.isfinite(self.lora_alpha)):
            raise SettingError(f"lora_alpha must be a positive number; got {self.lora_alpha}.")
        if self.padding == "none" and self.batch_size != 1:
            raise SettingError(f"padding 'none' keeps each message at its own length, so batches hold one "
                             f"message: set batch_size 1 (got {self.batch_size}), or use padding 'batch'.")
        own = [self.train_csv, self.val_csv, self.test_csv]
        if any(own) and not all(own):
            raise SettingError("Give all three of train_csv, val_csv and test_csv (or one file as csv); "
                             f"got train_csv={self.train_csv!r}, val_csv={self.val_csv!r}, test_csv={self.test_csv!r}.")
        if self.csv and any(own):
            raise SettingError("Give either csv (one file, split 70/10/20) or train_csv/val_csv/test_csv, not both.")
        if not 0 <= self.drop_rate < 1:
            raise SettingError(f"drop_rate must be in [0, 1); got {self.drop_rate}.")
        if self.train_limit is not None and self.train_limit < 1:
            raise SettingError(f"train_limit must be at least 1 (or None for all messages); got {self.train_limit}.")
        if self.weights == "pretrained" and not has_weights(model):
            published = ", ".join(p.split()[0] for p in (*MODEL_CONFIGS, *OPEN_MODELS) if has_weights(p))
            raise SettingError(f"weights: the preset {model!r} has no published weights (they exist for "
                               f"{published}); set weights to random for it.")
        if is_open_model(model) and (self.drop_rate > 0 or not self.causal_mask):
            raise SettingError(f"{'drop_rate' if self.drop_rate > 0 else 'causal_mask'}: {model} has no dropout and "
                               "always masks later tokens, as released; these two bonus options are GPT-2's.")
        context = any_config(model)["context_length"]
        if self.max_length is not None and not 1 <= self.max_length <= context:
            raise SettingError(f"max_length {self.max_length} must be between 1 and the model's context ({context}).")
        try:
            trainable_blocks(self.trainable, any_config(model)["n_layers"])
        except ValueError as err:
            raise SettingError(f"trainable: {err}") from None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown setting(s) {sorted(unknown)}; valid: {sorted(known)}.")
        return cls(**values)


def setting_fields() -> list:
    """The fields of :class:`FinetuneConfig`, in order (each with its metadata)."""
    return list(fields(FinetuneConfig))


def table_settings() -> list[str]:
    """The settings that describe an experiment: the runs table's setting columns."""
    return [f.name for f in fields(FinetuneConfig) if f.metadata["table"]]


def parse_setting(name: str, text: str) -> Any:
    """A command-line string as the value of setting ``name``; ValueError names the setting."""
    kind = next(f.metadata["parse"] for f in fields(FinetuneConfig) if f.name == name)
    if kind.endswith("?"):
        if text.strip().lower() in ("none", ""):
            return None
        kind = kind[:-1]
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"{name} takes a{'n integer' if kind == 'int' else ' number'}; got {text!r}.") from None
    if kind == "bool":
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{name} takes true or false; got {text!r}.")
    if kind == "trainable":
        return int(text) if text.isdigit() else text
    return text
