"""How much memory a run needs, worked out from its settings before anything is loaded, so
that a run that cannot fit is refused with a message instead of dying halfway.

The estimate (float32 throughout) adds up:

* the weights: every parameter of the base model, its 50,257-word output layer included;
* what trains: a private copy of each trainable tensor, its gradient and AdamW's two
  running averages (four numbers per trainable parameter);
* the activations that backpropagation keeps, in the blocks it runs through (from the
  lowest block that trains up), for one batch: about ``20 * emb_dim + 2 * n_heads * T``
  numbers per token and block (inputs of the norms, q/k/v, the feed-forward's 4x wide
  hidden layer, the attention weights);
* the frozen activations kept by ``speed="exact"``/``"fast"`` (see :mod:`gptlib.speed.cached`).

It is a planning figure, good to about 20%, not a measurement.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gptlib.classifier import trainable_blocks
from gptlib.model import get_config
from gptlib.models import canonical_name, is_open_model
from gptlib.settings import FinetuneConfig
from gptlib.speed.shared_base import base_is_loaded
from gptlib.support.meta import on_meta

GIB = 2**30


class NotEnoughMemory(ValueError):
    """A run whose estimated memory exceeds what the device has free."""


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    training: int
    activations: int
    kept: int
    trainable_params: int

    @property
    def total(self) -> int:
        return self.weights + self.training + self.activations + self.kept

    def describe(self) -> str:
        parts = [("weights", self.weights), ("what trains, with AdamW's state", self.training),
                 ("activations", self.activations)] + ([("kept frozen activations", self.kept)] if self.kept else [])
        return f"about {_size(self.total)} ({', '.join(f'{name} {_size(n)}' for name, n in parts)})"


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / 2**20:,.0f} MiB"


def block_params(d: int) -> int:
    """Parameters of one GPT-2 block: four d x d attention projections, the 4x feed-forward,
    their biases and two norms."""
    return 12 * d * d + 13 * d


def lora_params_per_block(d: int, rank: int) -> int:
    """LoRA numbers per block: r * (in + out) for each of its six Linear layers."""
    return rank * (4 * 2 * d + 2 * (d + 4 * d))


def estimate_run_memory(model_size: str, trainable: str | int, *, batch_size: int, tokens: int,
                        num_classes: int = 2, lora_rank: int = 16, lora_head: str = "adapter",
                        kept_bytes: int = 0, base_loaded: bool = False) -> MemoryEstimate:
    """The memory of one run (see the module's docstring); ``tokens`` is the padded length of a
    training batch, ``base_loaded`` leaves out weights already in memory (gptlib.speed.shared_base)."""
    if is_open_model(model_size):
        shape = open_shape(canonical_name(model_size))
    else:
        cfg = get_config(model_size)
        d, vocab = cfg["emb_dim"], cfg["vocab_size"]
        shape = {"emb_dim": d, "n_layers": cfg["n_layers"], "embeddings": vocab * d + cfg["context_length"] * d,
                 "block": block_params(d), "norm": 2 * d, "lora_block": lora_params_per_block(d, 1),
                 "all": vocab * d + cfg["context_length"] * d + cfg["n_layers"] * block_params(d) + 2 * d + vocab * d,
                 "per_token_block": 20 * d, "heads": cfg["n_heads"]}
    d, n_layers = shape["emb_dim"], shape["n_layers"]
    head = d * num_classes + num_classes
    if trainable == "lora":
        n_trainable = n_layers * shape["lora_block"] * lora_rank + lora_rank * (d + num_classes)
        n_trainable += head if lora_head == "full" else 0
        through = n_layers
    else:
        k = trainable_blocks(trainable, n_layers)
        n_trainable = head + (k * shape["block"] + shape["norm"] if k else 0)
        if trainable == "all":
            n_trainable += shape["embeddings"]
        through = k
    all_params = shape["all"]
    per_token_block = shape["per_token_block"] + 2 * shape["heads"] * tokens
    activations = 4 * batch_size * tokens * (through * per_token_block + 2 * d)
    weights = 0 if base_loaded else 4 * all_params
    return MemoryEstimate(weights=weights, training=4 * 4 * n_trainable, activations=activations,
                          kept=kept_bytes, trainable_params=n_trainable)


@functools.lru_cache(maxsize=8)
def open_shape(model_size: str) -> dict[str, int]:
    """An open model's sizes for the estimate, counted on a model built on the meta device (no
    memory): its parameters (a tied head counted once), one block's, the final norm's, LoRA's
    numbers per block at rank 1, and the activations one token keeps per block (the norms'
    inputs, q/k/v and the attention output, SwiGLU's three wide tensors)."""
    from gptlib.models import any_config, build_model

    cfg = any_config(model_size)
    with on_meta():
        model = build_model(model_size)
    block = model.trf_blocks[0]
    q, kv = cfg["n_heads"] * cfg["head_dim"], cfg["n_kv_groups"] * cfg["head_dim"]
    return {"emb_dim": cfg["emb_dim"], "n_layers": cfg["n_layers"], "heads": cfg["n_heads"],
            "all": sum(p.numel() for p in model.parameters()), "embeddings": model.tok_emb.weight.numel(),
            "block": sum(p.numel() for p in block.parameters()),
            "norm": sum(p.numel() for p in model.final_norm.parameters()),
            "lora_block": sum(m.in_features + m.out_features for m in block.modules() if isinstance(m, nn.Linear)),
            "per_token_block": 4 * cfg["emb_dim"] + 2 * q + 2 * kv + 3 * cfg["hidden_dim"]}


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (host memory for the CPU), or None where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def check_fits(estimate: MemoryEstimate, device: torch.device, what: str) -> str:
    """One line saying what the run needs; raises :class:`NotEnoughMemory` when it cannot fit."""
    free = available_bytes(device)
    line = f"Memory: {what} needs {estimate.describe()}"
    if free is None:
        return line + f"; free memory on {device.type} unknown."
    if estimate.total > free:
        raise NotEnoughMemory(
            f"{what} needs {estimate.describe()}, but {device.type} has {_size(free)} free. "
            "Try a smaller model_size, trainable 'lora' or 'last_block' instead of 'all', a smaller "
            "batch_size (with accumulation_steps to keep the updates), or a smaller max_length.")
    return line + f"; {_size(free)} free on {device.type}."


def run_memory_line(cfg: FinetuneConfig, device: torch.device, train_ds: Any, num_classes: int) -> str:
    """The line saying what a run needs (``cfg`` effective; ``train_ds`` its training
    SpamDataset), before the model is loaded; NotEnoughMemory for a run that will not fit."""

    tokens = train_ds.max_length if cfg.padding == "max_length" else max(train_ds.lengths)
    estimate = estimate_run_memory(cfg.model_size, cfg.trainable, batch_size=cfg.batch_size, tokens=tokens,
                                   num_classes=num_classes, lora_rank=cfg.lora_rank, lora_head=cfg.lora_head,
                                   base_loaded=base_is_loaded(cfg.model_size, cfg.weights, cfg.seed))
    return check_fits(estimate, device, f"{cfg.model_size}, trainable {cfg.trainable!r}, batch {cfg.batch_size}")
