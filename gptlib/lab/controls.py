"""The lab's controls as settings: the panel's choices and the :class:`FinetuneConfig` values
they stand for, in both directions, plus what the training set will hold. No widgets here.

Most controls are one setting each and are made from the setting's metadata (see
:mod:`gptlib.settings`); two are friendlier than the raw settings: "what trains" (a choice
plus N blocks, or LoRA) and "padding" (longest, per batch, none, the model's context, or a
fixed length). :func:`form_values` turns FinetuneConfig settings (or the panel's own
spellings) into control values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gptlib.data import (
    create_balanced_dataset,
    find_local_copy,
    read_sms_spam,
)
from gptlib.settings import FinetuneConfig
from gptlib.support.sms_files import cached_spam_file

TRAINABLE_OPTIONS = (
    ("output head only", "head"),
    ("last block + final norm (book)", "last_block"),
    ("last N blocks + final norm", "last_n"),
    ("all layers", "all"),
    ("LoRA adapters (appendix E)", "lora"),
)
TOKEN_OPTIONS = (
    ("last (book)", "last"),
    ("first", "first"),
    ("last real (non-pad) token", "last_real"),
    ("mean of the real tokens", "mean"),
    ("mean of all positions, pads included (bonus #19)", "mean_padded"),
)
PADDING_OPTIONS = (
    ("to the longest training message (book)", "longest"),
    ("per batch", "batch"),
    ("none: own length (batch size 1)", "none"),
    ("to the model's context", "context"),
    ("to a fixed length", "fixed"),
)
SPEED_OPTIONS = (
    ("book (plain loop)", "book"),
    ("exact (same numbers, faster)", "exact"),
    ("fast (bfloat16; picks last real token, per-batch padding)", "fast"),
)
LORA_SCALING_OPTIONS = (
    ("alpha (the printed book, bonus script)", "alpha"),
    ("alpha / rank (appendix E's notebook)", "alpha/rank"),
)
LORA_HEAD_OPTIONS = (
    ("adapter only (appendix E)", "adapter"),
    ("adapter + full head (bonus script)", "full"),
)
# Settings that no control shows, and that the lab never takes: your own data files.
OWN_DATA = ("csv", "train_csv", "val_csv", "test_csv")
# The settings with a control of their own, made from the setting's metadata (in this order).
LORA_CONTROLS = ("lora_rank", "lora_alpha", "lora_scaling", "lora_head", "lora_merged")
ADVANCED_CONTROLS = ("causal_mask", "accumulation_steps", "ignore_index")
SIMPLE_CONTROLS = ("model_size", "weights", "token", "speed", "epochs", "lr", "weight_decay", "drop_rate",
                   "dropout_scope", "batch_size", "seed", "eval_freq", *LORA_CONTROLS, *ADVANCED_CONTROLS)

# Each control's label where it is not the setting's name with spaces (errors speak of these).
LABELS = {"model_size": "model", "lr": "learning rate", "weight_decay": "weight decay",
          "drop_rate": "dropout rate", "dropout_scope": "dropout acts in", "batch_size": "batch size",
          "token": "token read", "eval_freq": "evaluate every (steps)", "lora_rank": "rank r",
          "lora_alpha": "alpha", "lora_scaling": "scale by", "lora_head": "new head gets",
          "lora_merged": "merged (fold A·B into W)", "causal_mask": "causal attention mask",
          "accumulation_steps": "accumulation steps", "ignore_index": "loss ignores target",
          "trainable": "what trains", "train_limit": "training messages", "max_length": "padding",
          "seeds": "repeat with N seeds"}


def control_label(setting: str) -> str:
    """The lab's name for the control of a setting, e.g. "model" for ``model_size``."""
    return LABELS.get(setting, setting.replace("_", " "))


BOOK_TRAIN_SIZE = 1045  # training messages in the book's split of the SMS Spam Collection


def trainable_choice(trainable: str | int) -> tuple[str, int]:
    """The panel's (choice, N) for a ``FinetuneConfig.trainable`` value."""
    if isinstance(trainable, int) and not isinstance(trainable, bool):
        return "last_n", trainable
    if trainable in ("head", "last_block", "all", "lora"):
        return trainable, 2
    match = re.fullmatch(r"last_?(\d+)(_blocks?)?", str(trainable))
    if match:
        n = int(match.group(1))
        return ("last_block", 1) if n == 1 else ("last_n", n)
    raise ValueError(f"Unknown trainable choice {trainable!r}; use 'head', 'last_block', 'last_N_blocks', "
                     "'all' or 'lora'.")


def trainable_value(choice: str, n_blocks: int) -> str:
    """``FinetuneConfig.trainable`` for the panel's (choice, N)."""
    if choice == "last_n":
        return "last_block" if n_blocks == 1 else f"last_{n_blocks}_blocks"
    return choice


def padding_choice(padding: str, max_length: int | None, context_length: int) -> str:
    """The panel's padding choice for ``FinetuneConfig.padding`` and ``max_length``."""
    if padding in ("batch", "none"):
        return padding
    if max_length is None:
        return "longest"
    return "context" if max_length == context_length else "fixed"


def padding_settings(choice: str, context_length: int, fixed_length: int) -> dict[str, Any]:
    """``FinetuneConfig`` padding and max_length for a panel padding choice."""
    if choice == "longest":
        return {"padding": "max_length", "max_length": None}
    if choice in ("batch", "none"):
        return {"padding": choice, "max_length": None}
    if choice == "context":
        return {"padding": "max_length", "max_length": context_length}
    if choice == "fixed":
        return {"padding": "max_length", "max_length": fixed_length}
    raise ValueError(f"Unknown padding choice {choice!r}; use one of {[v for _, v in PADDING_OPTIONS]}.")


def form_values(values: dict[str, Any], context_length: int) -> dict[str, Any]:
    """Settings as control values: FinetuneConfig's names and values (``padding`` "max_length",
    "batch" or "none" with ``max_length``; ``trainable`` "last_3_blocks" or 3; ``dropout_scope``
    None) or the panel's own (``padding`` "longest", "context", "fixed" or an int length).
    Settings with no control of their own (``blocks``, ``fixed_length``) come out by name."""
    out = dict(values)
    if "trainable" in out:
        out["trainable"], n_blocks = trainable_choice(out["trainable"])
        if out["trainable"] == "last_n":
            out["blocks"] = n_blocks
    if "padding" in out or "max_length" in out:
        padding, max_length = out.pop("padding", "max_length"), out.pop("max_length", None)
        if isinstance(padding, int) and not isinstance(padding, bool):
            padding, max_length = "max_length", padding
        if padding == "max_length":
            padding = padding_choice(padding, max_length, context_length)
        if padding == "fixed" and max_length is not None:
            out["fixed_length"] = max_length
        out["padding"] = padding
    if "train_limit" in out:
        out["train_limit"] = str(out["train_limit"] or "all")
    if "dropout_scope" in out:
        out["dropout_scope"] = out["dropout_scope"] or "auto"
    return out


def lora_scale_note(rank: int, alpha: float, scaling: str) -> str:
    """One line on the LoRA scale these settings give, and whose convention it is."""
    if scaling == "alpha/rank":
        return f"scale = alpha/rank = {alpha:g}/{rank} = {alpha / max(rank, 1):.3g} (appendix E's notebook)"
    return f"scale = alpha = {alpha:g} (the printed book)"


def config_from_profile(profile: Any) -> FinetuneConfig:
    """A FinetuneConfig with a notebook profile's settings (``gptlib.notebook.load_profile()``).

    The lab's data splits go to ``<work_dir>/lab``; no figures or checkpoints are written.
    """
    return profile.run_config("lab")


_size_cache: dict[tuple[str, float], int] = {}


def _data_source(cfg: FinetuneConfig) -> Path | None:
    """The raw SMS file a run will read, when it is already on disk."""
    try:
        local = find_local_copy(cfg.data)
    except FileNotFoundError:
        return None
    if local is not None:
        return local
    cached = cached_spam_file()
    return cached if cached.is_file() else None


def full_training_size(cfg: FinetuneConfig) -> int | None:
    """Messages in the training split (before ``train_limit``); None when it cannot be told yet.

    The split is the book's: balanced classes, 70% for training. Data that is still to be
    downloaded is the book's data, with 1,045 training messages.
    """
    source = _data_source(cfg)
    if source is None:
        return BOOK_TRAIN_SIZE if cfg.data is None else None
    if source.suffix == ".zip" or source.is_dir():
        return BOOK_TRAIN_SIZE
    key = (str(source), source.stat().st_mtime)
    if key not in _size_cache:
        try:
            balanced = create_balanced_dataset(read_sms_spam(source))
        except Exception:  # a bad file: the run itself reports what is wrong
            return None
        _size_cache[key] = int(len(balanced) * 0.7)
    return _size_cache[key]


def training_size(cfg: FinetuneConfig) -> int | None:
    """Messages a run trains on (``train_limit`` applied); None when unknown."""
    full = full_training_size(cfg)
    if cfg.train_limit is None:
        return full
    return cfg.train_limit if full is None else min(cfg.train_limit, full)
