"""What a long cell costs, worked out on the machine it runs on.

A notebook prints :func:`estimate_time` in a small cell above every cell that trains, so the
reader knows before pressing Shift-Enter: "about 9 minutes here; seconds once the store is
warm". One estimate per kind of run, from one source:

* a **probe** times one matrix product the size of the model's own (a batch of 8 messages of
  120 tokens through a 768 x 3072 layer) and gives this machine's speed in GFLOP/s, once per
  process (about a tenth of a second);
* the **work** of a run is counted in forward passes over the model's blocks, from the
  run's settings (epochs, batches, evaluation) and its kind:

  ========  ==================================================================
  book      every step runs all blocks forward, and the trainable top backward
  exact     the frozen blocks run once per message; each step only the top,
            and of it only what the read position needs
  fast      as exact on shorter, batch-padded rows; the store may hold the
            frozen part already (then only the top's steps are left)
  lora      every step runs all blocks forward and backward (LoRA trains in all)
  evaluate  no training: every message of the given splits through all blocks once
  ========  ==================================================================

An estimate, not a promise: it is good to a factor of about 1.5 on a quiet machine, and it
says so. Checked against benchmarks/results/full.txt (5 epochs, gpt2-small shape, probe 60
GFLOP/s): the runs reached 1.1-1.3x the probe's speed, and their counted work (book 190,
exact 32, fast 8 TFLOP) is what this module counts to within 15%.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

KINDS = ("book", "exact", "fast", "lora", "evaluate")
MODEL_EFFICIENCY = 1.0  # a run reaches about the probe's matmul speed (1.1-1.3x in benchmarks/results)
NEEDED_SHARE = 0.3  # exact/fast: the top block's keys and values at every position, the rest at the read one
FAST_ROW_SHARE = 0.25  # fast: batch padding and one read position leave about a quarter of exact's work


@functools.lru_cache(maxsize=1)
def machine_gflops() -> float:
    """This machine's fp32 matrix speed in GFLOP/s, from one timed product (cached per process)."""
    a, b = torch.randn(960, 768), torch.randn(768, 3072)
    a @ b  # warm up
    runs, start = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < 0.3:
        a @ b
        runs += 1
    return 2 * 960 * 768 * 3072 * runs / (time.perf_counter() - start) / 1e9


def _duration(seconds: float) -> str:
    if seconds >= 90:
        return f"about {seconds / 60:.0f} minutes"
    return f"about {seconds:.0f} seconds" if seconds >= 10 else "about 10 seconds or less"


@dataclass(frozen=True)
class Estimate:
    """A run's cost here: minutes, and the line a notebook prints above the cell."""

    kind: str
    seconds: float
    warm_seconds: float | None  # fast runs whose frozen part is already in the store
    gflops: float

    def text(self) -> str:
        what = "evaluation only" if self.kind == "evaluate" else f"{self.kind} run"
        line = f"The next cell ({what}): {_duration(self.seconds)} here"
        if self.warm_seconds is not None:
            line += f"; {_duration(self.warm_seconds)} when the store of frozen activations is warm"
        return (line + f". Worked out from a probe of this machine ({self.gflops:.0f} GFLOP/s) and the run's "
                "settings; good to a factor of about 1.5 on a quiet machine.")

    def _repr_markdown_(self) -> str:
        return f"> **Time.** {self.text()}"

    def __repr__(self) -> str:
        return self.text()


def run_forwards(kind: str, *, n_layers: int, train: int, validation: int, test: int, epochs: int,
                 batch_size: int, eval_freq: int, eval_iter: int, trainable_layers: int = 1) -> tuple[float, float]:
    """The work of a run in full forward passes over one batch (all blocks), for the training
    loop with its evaluations and the final accuracies: (total, the part left when the frozen
    blocks' output is already stored)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind of run {kind!r}; choose one of {KINDS}.")
    final = math.ceil((train + validation + test) / batch_size)  # every split, once, at the end
    if kind == "evaluate":
        return final, 0.0
    steps = epochs * max(train // batch_size, 1)
    evals = (steps // max(eval_freq, 1) + 1) * 2 * eval_iter + epochs * 2 * eval_iter  # loss and accuracy
    top = min(trainable_layers, n_layers) / n_layers  # share of the blocks that train
    if kind == "book":
        return steps * (1 + 2 * top) + evals + final, 0.0
    if kind == "lora":
        return steps * 3 + evals + final, 0.0
    frozen = final * (1 - top)  # every message through the frozen blocks, once
    rest = (steps * 3 * top + (evals + final) * top) * NEEDED_SHARE
    if kind == "fast":
        return (frozen + rest) * FAST_ROW_SHARE, rest * FAST_ROW_SHARE
    return frozen + rest, 0.0


def estimate_time(config: Any, kind: str | None = None, *, train: int = 1045, validation: int = 149,
                  test: int = 300, max_length: int = 120) -> Estimate:
    """How long a run with ``config`` (a FinetuneConfig or a notebook profile) takes on this
    machine: ``kind`` is "book", "exact", "fast" or "lora" (default: the config's own speed, or
    "lora" for a LoRA run). Split sizes default to the book's (1,045 / 149 / 300 messages)."""
    from gptlib.models import any_config

    kind = kind or ("lora" if config.trainable == "lora" else config.speed)
    cfg = any_config(config.model_size)
    d, layers = cfg["emb_dim"], cfg["n_layers"]
    trainable = {"head": 0, "last_block": 1, "last_2_blocks": 2, "all": layers}.get(str(config.trainable), 1)
    total, warm = run_forwards(kind, n_layers=layers, train=train, validation=validation, test=test,
                               epochs=config.epochs, batch_size=config.batch_size, eval_freq=config.eval_freq,
                               eval_iter=config.eval_iter, trainable_layers=trainable)
    flop_per_forward = 2 * 12 * d * d * layers * config.batch_size * max_length  # ~12 d^2 weights per block
    speed = machine_gflops()
    seconds = total * flop_per_forward / (speed * 1e9 * MODEL_EFFICIENCY)
    warm_seconds = warm * flop_per_forward / (speed * 1e9 * MODEL_EFFICIENCY) if kind == "fast" else None
    return Estimate(kind, seconds, warm_seconds, speed)
