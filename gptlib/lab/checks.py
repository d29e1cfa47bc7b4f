"""What the lab says of a set of settings before it runs them: problems that refuse the run
(one that cannot fit in memory among them), and notes (a slow run, a download first,
a speed that does not apply to LoRA or to the causal mask off)."""

from __future__ import annotations

from gptlib.lab.controls import training_size
from gptlib.models import any_config
from gptlib.settings import FinetuneConfig
from gptlib.speed.memory import available_bytes, estimate_run_memory
from gptlib.support.device import get_device

BOOK_LONGEST = 120  # tokens in the longest training message of the book's split (its padded length)
GIB = 2**30


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / 2**20:,.0f} MiB"


def speed_blocked(cfg: FinetuneConfig) -> str | None:
    """Why speed "exact"/"fast" cannot reuse anything for these settings (None: it can); the
    settings-level twin of :func:`gptlib.speed.cached.speed_blocker`, which asks a built model."""
    if not cfg.causal_mask:
        return "the causal mask is off, so every position depends on the whole padded row"
    if cfg.trainable == "lora":
        return "LoRA adapters train in every block, so no block is frozen"
    return None


def memory_check(cfg: FinetuneConfig) -> tuple[str, bool]:
    """(one line, fits): about how much memory the run needs and how much is free on its device
    (:func:`gptlib.speed.memory.estimate_run_memory`, as ``run_finetune`` itself works it out, for
    messages padded to ``max_length`` or to the book's longest, 120 tokens). The settings must
    have passed ``cfg.check()``."""
    from gptlib.speed.shared_base import base_is_loaded

    context = any_config(cfg.model_size)["context_length"]
    tokens = min(cfg.max_length or BOOK_LONGEST, context)
    estimate = estimate_run_memory(cfg.model_size, cfg.trainable, batch_size=cfg.batch_size, tokens=tokens,
                                   lora_rank=cfg.lora_rank, lora_head=cfg.lora_head,
                                   base_loaded=base_is_loaded(cfg.model_size, cfg.weights, cfg.seed))
    try:
        device = get_device(cfg.device)
    except ValueError:
        return f"Memory: needs about {_size(estimate.total)}.", True
    free = available_bytes(device)
    if free is None:
        return f"Memory: needs about {_size(estimate.total)}; free memory on {device.type} unknown.", True
    line = f"Memory: needs about {_size(estimate.total)}; {_size(free)} free on {device.type}."
    if estimate.total <= free:
        return line, True
    return (f"Memory: {cfg.model_size} with trainable {cfg.trainable!r} and batch {cfg.batch_size} needs about "
            f"{_size(estimate.total)}, but {device.type} has {_size(free)} free: choose a smaller model, LoRA "
            "or fewer trainable blocks, a smaller batch size (with accumulation steps to keep the updates) or "
            "shorter padding."), False


def check_settings(cfg: FinetuneConfig, last_n_blocks: int | None = None
                   ) -> tuple[list[str], list[str], FinetuneConfig | None]:
    """(problems, notes, cfg or None when there are problems). ``last_n_blocks``: the lab's
    "last N blocks" entry, when that is the choice."""
    from gptlib.models.hf_weights import weights_file

    problems: list[str] = []
    notes: list[str] = []
    model_cfg = any_config(cfg.model_size)
    context, n_layers = model_cfg["context_length"], model_cfg["n_layers"]
    if cfg.max_length is not None and cfg.max_length > context:
        problems.append(f"A context of {cfg.max_length} tokens is longer than {cfg.model_size}'s "
                        f"{context}: choose a fixed length up to {context}.")
    if last_n_blocks is not None and last_n_blocks > n_layers:
        problems.append(f"{cfg.model_size} has {n_layers} transformer blocks; cannot train the last {last_n_blocks}.")
    n_train = training_size(cfg)
    if n_train is not None and cfg.batch_size > n_train:
        problems.append(f"Batch size {cfg.batch_size} is larger than the training set ({n_train} messages): "
                        "there would not be a single training batch.")
    if not problems:
        try:
            cfg.check()
        except ValueError as err:
            problems.append(str(err))
    try:
        device = get_device(cfg.device)
    except ValueError as err:
        problems.append(str(err))
        device = None
    if not problems:
        line, fits = memory_check(cfg)
        if not fits:
            problems.append(line)
    if problems:
        return problems, notes, None
    effective = cfg.effective()
    blocked = speed_blocked(cfg)
    if blocked and cfg.speed != "book":
        notes.append(f"Speed '{cfg.speed}' cannot reuse anything here ({blocked}): the book's computation "
                     "runs, at the book's speed.")
    if cfg.drop_rate > 0 and effective.dropout_scope == "all" and cfg.speed != "book" and not blocked:
        notes.append("Dropout in the frozen blocks (scope 'all', the book's) changes their output every step, "
                     "so nothing can be reused: expect a run many times slower than without dropout.")
    if cfg.ignore_index in (0, 1):
        notes.append(f"The loss ignores target {cfg.ignore_index}, a class label: those messages teach nothing "
                     "(the book's row 18 uses 50256, the pad token, which no label is).")
    if n_train is not None and n_train // cfg.batch_size < cfg.accumulation_steps:
        notes.append(f"{cfg.accumulation_steps} accumulation steps but only {n_train // cfg.batch_size} batches "
                     "per epoch: one optimizer update per epoch.")
    if device is not None and device.type == "cpu":
        if effective.max_length is not None and effective.max_length >= 1024:
            notes.append(f"Padding every message to {effective.max_length} tokens on a CPU: each step "
                         "computes about 8 times as many positions as padding to the longest "
                         "message (120), so expect a run to take several times longer.")
        if model_cfg["emb_dim"] >= 1024:
            notes.append(f"{cfg.model_size} on a CPU: expect a long run (many minutes per epoch).")
    if cfg.weights == "pretrained" and not weights_file(cfg.model_size).exists():
        notes.append(f"{cfg.model_size}'s weights are not in the cache yet: the run downloads them first.")
    return problems, notes, cfg
