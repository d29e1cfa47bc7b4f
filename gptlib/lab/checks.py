"""What the lab says of a set of settings before it runs them: problems that refuse the run,
and notes (a slow run, a download first, a choice fast mode replaces)."""

from __future__ import annotations

from gptlib.device import get_device
from gptlib.lab.controls import training_size
from gptlib.model import get_config
from gptlib.settings import FinetuneConfig


def check_settings(cfg: FinetuneConfig, last_n_blocks: int | None = None
                   ) -> tuple[list[str], list[str], FinetuneConfig | None]:
    """(problems, notes, cfg or None when there are problems). ``last_n_blocks``: the lab's
    "last N blocks" entry, when that is the choice."""
    from gptlib.weights import HF_REPOS, weights_path

    problems: list[str] = []
    notes: list[str] = []
    model_cfg = get_config(cfg.model_size)
    context, n_layers = model_cfg["context_length"], model_cfg["n_layers"]
    if cfg.max_length is not None and cfg.max_length > context:
        problems.append(f"A context of {cfg.max_length} tokens is longer than {cfg.model_size}'s "
                        f"{context}: choose a fixed length up to {context}.")
    if last_n_blocks is not None and last_n_blocks > n_layers:
        problems.append(f"{cfg.model_size} has {n_layers} transformer blocks; cannot train the last {last_n_blocks}.")
    if cfg.weights == "pretrained" and cfg.model_size not in HF_REPOS:
        problems.append(f"{cfg.model_size} has no published weights: choose random weights.")
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
    if problems:
        return problems, notes, None
    effective = cfg.effective()
    if cfg.speed == "fast" and (cfg.token, cfg.padding) != (effective.token, effective.padding):
        notes.append("Speed 'fast' reads the last real token of messages padded per batch; "
                     "the token and padding choices are replaced by these.")
    if cfg.drop_rate > 0 and effective.dropout_scope == "all" and cfg.speed != "book":
        notes.append("Dropout in the frozen blocks (scope 'all', the book's) changes their output every step, "
                     "so nothing can be reused: expect a run many times slower than without dropout.")
    if device is not None and device.type == "cpu":
        if effective.max_length is not None and effective.max_length >= 1024:
            notes.append(f"Padding every message to {effective.max_length} tokens on a CPU: each step "
                         "computes about 8 times as many positions as padding to the longest "
                         "message (120), so expect a run to take several times longer.")
        if model_cfg["emb_dim"] >= 1024:
            notes.append(f"{cfg.model_size} on a CPU: expect a long run (many minutes per epoch).")
    if cfg.weights == "pretrained" and not weights_path(cfg.model_size).exists():
        notes.append(f"{cfg.model_size}'s weights are not in the cache yet: the run downloads them first.")
    return problems, notes, cfg
