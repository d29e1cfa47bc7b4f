"""The speed-ups, behind one door: :func:`prepare`.

The chapter's loop (``gptlib.train``) knows nothing of them. As nanoGPT compiles its model
once before the loop, a run hands its classifier to :func:`prepare` once, before training,
and trains what comes back (``run_finetune`` does; nothing else wraps a model)::

    fast = speed.prepare(model, cfg, (train_ds, val_ds, test_ds), say=print)
    train_loader, val_loader, test_loader = create_data_loaders(
        train_ds, val_ds, test_ds, batch_size=8, train_batch_sampler=fast.train_batch_sampler)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1, **fast.optimizer_kwargs)
    train_classifier_simple(fast.runner, train_loader, val_loader, optimizer, ...)

What is below: :mod:`~gptlib.speed.plan` (which tricks apply), :mod:`~gptlib.speed.cached`
(the wrapper that applies them), :mod:`~gptlib.speed.kernels` (its arithmetic),
:mod:`~gptlib.speed.store` (frozen activations shared between runs and processes),
:mod:`~gptlib.speed.shared_base` (one base model per process), :mod:`~gptlib.speed.memory`
(what a run needs, checked before it starts), :mod:`~gptlib.speed.batching` (length grouping).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Sampler

from gptlib.speed.batching import LengthGroupedBatchSampler
from gptlib.speed.cached import CachedClassifier, wrap_for_speed
from gptlib.speed.kernels import bf16_choice
from gptlib.speed.plan import estimate_cache_bytes, speed_blocker
from gptlib.speed.reuse import PrefixReuse

__all__ = ["Prepared", "prepare", "speed_blocker", "warm_process", "wrap"]

_WHERE = {"computed": "computed", "memory": "taken from the store in memory", "disk": "taken from the store on disk",
          "shared": "taken from the class's shared store"}


@dataclass
class Prepared:
    """What a run trains and evaluates with: ``runner`` (the classifier itself, or a
    :class:`~gptlib.speed.cached.CachedClassifier` around it), the training loader's batch
    sampler (None: the book's shuffled batches) and extra keywords for AdamW."""

    runner: nn.Module
    train_batch_sampler: Sampler[list[int]] | None = None
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)

    def release(self) -> None:
        """Free the activations the runner keeps (the store keeps its own copy)."""
        if isinstance(self.runner, CachedClassifier):
            self.runner.clear_cache()


def wrap(model: nn.Module, speed: str = "exact") -> nn.Module:
    """The classifier to hand to the book's loop instead of ``model``, for a reader who trains
    outside ``run_finetune``: wrap once, before the loop, as nanoGPT compiles its model::

        runner = speed.wrap(classifier, "exact")   # the same numbers, several times faster
        train_classifier_simple(runner, train_loader, ...)

    ``model`` itself for "book" or where the tricks cannot apply (see :func:`speed_blocker`).
    """
    return wrap_for_speed(model, speed)


def prepare(model: nn.Module, cfg: Any, datasets: Sequence, *, device: torch.device | None = None,
            say: Callable[[str], Any] = print, progress: bool = False) -> Prepared:
    """Apply ``cfg.speed`` to ``model`` once, before the loop: wrap it, say what is skipped and
    why, fill the kept activations (from the store when another run made them), choose the
    training batches and the optimizer's flags. ``datasets``: (train, validation, test).

    Draws no random numbers, so the book's seeds give the book's run whatever the speed.
    ``"book"`` returns the model as it is.
    """
    runner = wrap(model, cfg.speed)
    wrapped = runner is not model
    device = device if device is not None else next(model.parameters()).device
    # fast mode also takes PyTorch's fused AdamW (one kernel per step instead of many; the
    # same update up to rounding); the other speeds keep the book's optimizer as it is.
    fused = {"fused": True} if cfg.speed == "fast" and device.type in ("cpu", "cuda") else {}
    if isinstance(runner, PrefixReuse):  # an open model (Qwen3, Llama): its frozen part kept per message
        runner.pad_token_id = datasets[0].pad_token_id
        say(f"Speed '{cfg.speed}': {runner.explain()}.")
        began = time.perf_counter()
        runner.warm_up(datasets, token=cfg.token, progress=progress)
        if runner.warm_source is not None:
            say(f"Frozen activations {_WHERE[runner.warm_source]} in {time.perf_counter() - began:.1f} s; "
                f"{runner.store.describe() if runner.store is not None else 'kept for this run only'}")
        return Prepared(runner, None, fused)
    if not wrapped and cfg.speed != "book":
        say(f"Speed '{cfg.speed}' does not apply here ({speed_blocker(model)}): the book's computation runs.")
    # Fast mode groups messages of similar length into batches so that little padding is
    # computed. Where training computes only the last block's read position over kept
    # activations, padding costs next to nothing, and the book's shuffled batches (which mix
    # short and long messages, ham and spam) are kept.
    group = cfg.speed == "fast" and not (wrapped and runner.plan.padding_is_cheap_in_training(cfg.token))
    sampler = LengthGroupedBatchSampler(datasets[0].lengths, cfg.batch_size, drop_last=True) if group else None
    if group:
        say("Fast mode: training batches grouped by length.")
    if wrapped:
        need = estimate_cache_bytes(datasets, cfg.token, model.cfg["emb_dim"], runner.cache_dtype)
        say(f"Speed '{cfg.speed}': {runner.plan.explain(cfg.token)}\n"
            f"Kept activations need about {need / 2**20:,.0f} MiB ({runner.cache_dtype}); "
            f"limit {runner.max_cache_bytes / 2**30:.1f} GiB.")
        if cfg.speed == "fast":
            say(bf16_choice(device))
        if runner.plan.reuse_on():
            began = time.perf_counter()
            runner.warm_up(datasets, token=cfg.token, progress=progress)
            say(f"Frozen activations {_WHERE.get(runner.warm_source or '', 'computed')} in "
                f"{time.perf_counter() - began:.1f} s" + (f"; {runner.store.describe()}" if runner.store is not None else ""))
    return Prepared(runner, sampler, fused)


def warm_process(cfg: Any) -> None:
    """Load ahead, once per process, what the first run of ``cfg`` would wait for and every
    later run reuses: the base model (mapped, see :mod:`~gptlib.speed.shared_base`; only where
    its weights are on disk already, never a download), fast mode's bfloat16 measurement, and
    torch's optimizer machinery (a process's first optimizer imports ``torch._dynamo``: about a
    second and 70 MB, whatever the run). The lab calls it in a background thread when its panel
    opens, so a student's first click runs about as fast as a re-run."""
    import torch._dynamo  # noqa: F401  (what torch.optim's first optimizer would import)

    from gptlib.models.hf_weights import weights_file
    from gptlib.speed.shared_base import shared_base
    from gptlib.support.device import get_device

    device = get_device(cfg.device)
    if cfg.speed == "fast":
        bf16_choice(device)
    if cfg.weights == "random" or weights_file(cfg.model_size).is_file():
        shared_base(cfg.model_size, cfg.weights, cfg.seed, progress=False)
