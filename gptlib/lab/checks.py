"""What the lab says of a set of settings before it runs them: problems that refuse the run
(one that cannot fit in memory among them), and notes (a slow run, a download first or
pretrained weights out of reach, a speed that does not apply to LoRA or to the causal mask off)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from urllib.parse import urlparse

from gptlib.lab.controls import control_label, training_size
from gptlib.lab.messages import lab_words
from gptlib.models import any_config
from gptlib.settings import FinetuneConfig
from gptlib.speed.memory import available_bytes, estimate_run_memory
from gptlib.support.device import get_device

BOOK_LONGEST = 120  # tokens in the longest training message of the book's split (its padded length)
GIB = 2**30


RESOLVE_WAIT = 1.5  # seconds the lab waits for a host name to resolve before it stops asking
_resolved: dict[str, tuple[float, bool]] = {}  # host -> (when, whether it resolved), kept a minute


def host_resolves(host: str, wait: float = RESOLVE_WAIT) -> bool | None:
    """Whether ``host``'s name resolves: True, False, or None when the answer takes longer than
    ``wait`` seconds (the lookup runs in a thread of its own, so nothing here hangs; a late
    answer is kept for the next ask). No connection is opened."""
    now = time.monotonic()
    if host in _resolved and now - _resolved[host][0] < 60:
        return _resolved[host][1]

    def look() -> None:
        try:
            socket.getaddrinfo(host, 443)
            _resolved[host] = (time.monotonic(), True)
        except (OSError, UnicodeError):
            _resolved[host] = (time.monotonic(), False)

    thread = threading.Thread(target=look, name="gptlib-lab-resolve", daemon=True)
    thread.start()
    thread.join(wait)
    return _resolved[host][1] if host in _resolved and _resolved[host][0] >= now else None


def _cached_elsewhere(model_size: str) -> bool:
    """Whether the Hugging Face cache holds a copy of GPT-2's weights (not verified here: the run does)."""
    from gptlib.support.weight_files import hf_cache_root
    from gptlib.weights import HF_REPOS, resolve_preset

    repo = HF_REPOS.get(resolve_preset(model_size)) if model_size.startswith("gpt2") else None
    folder = hf_cache_root() / f"models--{repo.replace('/', '--')}" / "snapshots" if repo else None
    return folder is not None and any(folder.glob("*/model.safetensors"))


def pretrained_available(model_size: str) -> tuple[bool, str]:
    """(whether a run of ``model_size`` with pretrained weights can have them, why not).

    Yes when the weights are cached (gptlib's cache or the Hugging Face cache), or when the
    download host's name resolves (or an HTTP proxy is set, or the lookup is slow to answer);
    no network connection is opened to decide."""
    from gptlib.models import has_weights
    from gptlib.models.hf_weights import weights_file
    from gptlib.weights import hub_endpoint

    if not has_weights(model_size):
        return False, f"{model_size} has no published pretrained weights"
    if weights_file(model_size).exists() or _cached_elsewhere(model_size):
        return True, ""
    host = urlparse(hub_endpoint()).hostname or "huggingface.co"
    if urllib.request.getproxies() or host_resolves(host) is not False:
        return True, ""
    return False, f"{model_size}'s pretrained weights are not in the cache here and {host} cannot be reached"


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
    problems = [lab_words(p) for p in problems]  # the settings' own errors may name CLI flags
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
        reachable, why = pretrained_available(cfg.model_size)
        notes.append(f"{cfg.model_size}'s weights are not in the cache yet: the run downloads them first."
                     if reachable else f"{why}: the run would fail. Choose 'random' in the lab's "
                     f"'{control_label('weights')}' setting (or copy the weights file into the cache first).")
    return problems, notes, cfg
