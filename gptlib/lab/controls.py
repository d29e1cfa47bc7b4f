"""The lab's controls as settings: the panel's choices and the :class:`FinetuneConfig` values
they stand for, in both directions, plus what the training set will hold. No widgets here.

Most controls are one setting each and are made from the setting's metadata (see
:mod:`gptlib.settings`); two are friendlier than the raw settings: "what trains" (a choice
plus N blocks) and "padding" (longest, per batch, the model's context, or a fixed length).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gptlib.data import (
    SPAM_MEMBER,
    create_balanced_dataset,
    default_data_dir,
    find_local_copy,
    read_sms_spam,
)
from gptlib.settings import FinetuneConfig

TRAINABLE_OPTIONS = (
    ("output head only", "head"),
    ("last block + final norm (book)", "last_block"),
    ("last N blocks + final norm", "last_n"),
    ("all layers", "all"),
)
TOKEN_OPTIONS = (
    ("last (book)", "last"),
    ("first", "first"),
    ("last real (non-pad) token", "last_real"),
    ("mean over real tokens", "mean"),
)
PADDING_OPTIONS = (
    ("to the longest training message (book)", "longest"),
    ("per batch", "batch"),
    ("to the model's context", "context"),
    ("to a fixed length", "fixed"),
)
SPEED_OPTIONS = (
    ("book (plain loop)", "book"),
    ("exact (same numbers, faster)", "exact"),
    ("fast (last real token, per-batch padding)", "fast"),
)
BOOK_TRAIN_SIZE = 1045  # training messages in the book's split of the SMS Spam Collection


def trainable_choice(trainable: str | int) -> tuple[str, int]:
    """The panel's (choice, N) for a ``FinetuneConfig.trainable`` value."""
    if isinstance(trainable, int) and not isinstance(trainable, bool):
        return "last_n", trainable
    if trainable in ("head", "last_block", "all"):
        return trainable, 2
    match = re.fullmatch(r"last_?(\d+)(_blocks?)?", str(trainable))
    if match:
        n = int(match.group(1))
        return ("last_block", 1) if n == 1 else ("last_n", n)
    raise ValueError(f"Unknown trainable choice {trainable!r}; use 'head', 'last_block', 'last_N_blocks' or 'all'.")


def trainable_value(choice: str, n_blocks: int) -> str:
    """``FinetuneConfig.trainable`` for the panel's (choice, N)."""
    if choice == "last_n":
        return "last_block" if n_blocks == 1 else f"last_{n_blocks}_blocks"
    return choice


def padding_choice(padding: str, max_length: int | None, context_length: int) -> str:
    """The panel's padding choice for ``FinetuneConfig.padding`` and ``max_length``."""
    if padding == "batch":
        return "batch"
    if max_length is None:
        return "longest"
    return "context" if max_length == context_length else "fixed"


def padding_settings(choice: str, context_length: int, fixed_length: int) -> dict[str, Any]:
    """``FinetuneConfig`` padding and max_length for a panel padding choice."""
    if choice == "longest":
        return {"padding": "max_length", "max_length": None}
    if choice == "batch":
        return {"padding": "batch", "max_length": None}
    if choice == "context":
        return {"padding": "max_length", "max_length": context_length}
    if choice == "fixed":
        return {"padding": "max_length", "max_length": fixed_length}
    raise ValueError(f"Unknown padding choice {choice!r}; use one of {[v for _, v in PADDING_OPTIONS]}.")


def config_from_profile(profile: Any) -> FinetuneConfig:
    """A FinetuneConfig with a notebook profile's settings (``gptlib.notebook.load_profile()``).

    The lab's data splits go to ``<work_dir>/lab``; no figures or checkpoints are written.
    """
    data_file = getattr(profile, "data_file", None)
    return FinetuneConfig(
        model_size=profile.model, weights=profile.weights, epochs=profile.epochs, lr=profile.lr,
        weight_decay=profile.weight_decay, batch_size=profile.batch_size, seed=profile.seed,
        device=profile.device, eval_freq=profile.eval_freq, eval_iter=profile.eval_iter,
        data=str(data_file) if data_file else None, output=str(Path(profile.work_dir) / "lab"),
        figures=None,
    )


_size_cache: dict[tuple[str, float], int] = {}


def _data_source(cfg: FinetuneConfig) -> Path | None:
    """The raw SMS file a run will read, when it is already on disk."""
    try:
        local = find_local_copy(cfg.data)
    except FileNotFoundError:
        return None
    if local is not None:
        return local
    cached = default_data_dir() / "sms_spam_collection" / f"{SPAM_MEMBER}.tsv"
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
