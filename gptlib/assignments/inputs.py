"""Inputs the checks make themselves: small models, data and batches the student never saw.

A student's function is judged on these, so that an answer copied from the notebook's own
numbers (or hard-coded for the smoke model) does not pass. When grading, the grader calls
:func:`draw_fresh` first: every seed and offset below is then shifted by a number drawn at
grading time, so inputs worked out ahead from the checks' source are not the ones asked.
"""

from __future__ import annotations

import random
import secrets
import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from gptlib.classifier import add_classification_head
from gptlib.data import SpamDataset, map_labels, read_sms_spam
from gptlib.model import GPTModel, get_config
from gptlib.notebook import smoke_data_file
from gptlib.support.meta import on_meta
from gptlib.tokenizer import END_OF_TEXT_ID, get_tokenizer

PAD_ID = END_OF_TEXT_ID
_salt = 0  # 0 when a student runs the checks; drawn afresh by the grader


def draw_fresh() -> int:
    """Shift every seed and offset by a number drawn now (the grader's process only)."""
    global _salt
    _salt = secrets.randbelow(10**6) + 1
    return _salt


def seed_of(seed: int) -> int:
    """``seed``, shifted by the grading draw."""
    return seed + _salt


def rng(tag: int = 0) -> random.Random:
    """A random source for extra cases: fixed when a student runs the checks, fresh when graded."""
    return random.Random(seed_of(tag) * 7919)


def tiny_model(seed: int = 7, **overrides) -> GPTModel:
    """A small random GPT-2 (GPT-2's vocabulary) in eval mode; ``overrides`` change its config."""
    cfg = get_config("gpt2-tiny (test)", drop_rate=0.0)
    cfg.update(overrides)
    torch.manual_seed(seed_of(seed))
    return GPTModel(cfg).eval()


def meta_model(size: str = "gpt2-small (124M)") -> GPTModel:
    """GPT-2 of a real size on the meta device: its shapes and counts, no memory, no weights."""
    with on_meta():
        return GPTModel(get_config(size))


def tiny_classifier(seed: int = 7, num_classes: int = 2, drop_rate: float = 0.0, **overrides) -> GPTModel:
    """A small classifier (the book's head, last block trainable) with random weights."""
    model = tiny_model(seed, drop_rate=drop_rate, **overrides)
    return add_classification_head(model, num_classes=num_classes, seed=seed_of(seed))


def messages(n: int | None = None, offset: int = 0) -> pd.DataFrame:
    """Labelled messages (Text, Label 0/1) from the smoke data file, in file order."""
    frame = map_labels(read_sms_spam(smoke_data_file(), strict=True)).reset_index(drop=True)
    if _salt:
        offset = (offset + _salt) % max(len(frame) - (n or 0), 1)
    part = frame.iloc[offset:] if n is None else frame.iloc[offset:offset + n]
    return part.reset_index(drop=True)


def dataset(frame: pd.DataFrame, max_length: int | None = None, padding: str = "max_length") -> SpamDataset:
    return SpamDataset(frame, get_tokenizer(), max_length=max_length, padding=padding)


def loader(frame: pd.DataFrame, batch_size: int = 4, max_length: int | None = None,
           shuffle: bool = False) -> DataLoader:
    """A loader in a fixed order (unless ``shuffle``), the last batch kept even when smaller.
    It draws its random numbers from a generator of its own, so iterating over it leaves the
    global random state (and with it dropout) alone."""
    return DataLoader(dataset(frame, max_length), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0))


def random_logits(seed: int, rows: int, classes: int, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed_of(seed))
    return torch.randn(rows, classes, generator=g) * scale


def random_targets(seed: int, rows: int, classes: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed_of(seed) + 1000)
    return torch.randint(0, classes, (rows,), generator=g)


def padded_batch(seed: int, lengths: list[int], pad: int = PAD_ID, width: int | None = None) -> torch.Tensor:
    """Rows of random token ids (never the pad id) of the given lengths, right-padded."""
    g = torch.Generator().manual_seed(seed_of(seed))
    width = width or max(lengths)
    rows = torch.full((len(lengths), width), pad, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids = torch.randint(0, 50000, (n,), generator=g)
        ids[ids == pad] = 1
        rows[i, :n] = ids
    return rows


def work_folder(name: str) -> Path:
    """A private scratch folder for a check's files."""
    return Path(tempfile.mkdtemp(prefix=f"gptlib-check-{name}-"))


__all__ = ["PAD_ID", "dataset", "draw_fresh", "rng", "seed_of", "loader", "messages", "meta_model", "padded_batch", "random_logits",
           "random_targets", "tiny_classifier", "tiny_model", "work_folder"]
