"""The whole chapter in one call: data, pretrained GPT-2, new head, training, evaluation, plots.

``run_finetune(FinetuneConfig())`` reproduces the book's run; the command line
(``python -m gptlib finetune``), the notebooks and the lab all go through it.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gptlib.classifier import (
    TOKEN_CHOICES,
    add_classification_head,
    save_classifier,
    trainable_blocks,
    trainable_summary,
)
from gptlib.data import (
    CLASS_NAMES,
    SPAM_SHA256,
    SpamDataset,
    create_data_loaders,
    download_and_unzip_spam_data,
    prepare_spam_splits,
    spam_datasets,
)
from gptlib.device import get_device
from gptlib.download import atomic_write_bytes, sha256_of
from gptlib.fast import SPEEDS, estimate_cache_bytes, wrap_for_speed
from gptlib.model import GPTModel, get_config, resolve_preset
from gptlib.tokenizer import get_tokenizer
from gptlib.train import (
    calc_accuracy_loader,
    classification_metrics,
    train_classifier_simple,
)


@dataclass
class FinetuneConfig:
    """Settings of a fine-tuning run; the defaults are the book's."""

    model_size: str = "gpt2-small (124M)"
    weights: str = "pretrained"  # or "random"
    epochs: int = 5
    lr: float = 5e-5
    weight_decay: float = 0.1
    drop_rate: float = 0.0
    batch_size: int = 8
    trainable: str = "last_block"
    token: str = "last"
    padding: str = "max_length"  # pad to the longest training message (book) or "batch"
    max_length: int | None = None  # None: longest training message; 1024: the book's exercise 6.1
    data: str | None = None  # a local SMSSpamCollection (or zip, or folder); else download
    seed: int = 123
    device: str = "auto"
    output: str = "runs/finetune"
    figures: str | None = "figures"
    eval_freq: int = 50
    eval_iter: int = 5
    train_limit: int | None = None  # use only the first N training messages (for quick experiments)
    speed: str = "exact"  # "book" (plain), "exact" (same results, faster), "fast" (see gptlib.fast)

    def effective(self) -> FinetuneConfig:
        """The settings actually used: ``speed="fast"`` reads the last real token of messages
        padded per batch (with pretrained weights the book's bonus table has it more accurate)."""
        out = replace(self, model_size=resolve_preset(self.model_size))
        if self.speed == "fast":
            out = replace(out, token="last_real", padding="batch")
        return out

    def check(self) -> None:
        """Raise ValueError for settings that cannot work, naming the setting and its value."""
        resolve_preset(self.model_size)
        if self.weights not in ("pretrained", "random"):
            raise ValueError(f"weights must be 'pretrained' or 'random'; got {self.weights!r}.")
        if self.speed not in SPEEDS:
            raise ValueError(f"speed must be one of {SPEEDS}; got {self.speed!r}.")
        if self.token not in TOKEN_CHOICES:
            raise ValueError(f"token must be one of {TOKEN_CHOICES}; got {self.token!r}.")
        for name in ("epochs", "batch_size", "eval_freq", "eval_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive; got {self.lr}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}.")
        if not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1); got {self.drop_rate}.")
        context = get_config(self.model_size)["context_length"]
        if self.max_length is not None and not 1 <= self.max_length <= context:
            raise ValueError(f"max_length {self.max_length} must be between 1 and the model's context ({context}).")
        if self.padding not in ("max_length", "batch"):
            raise ValueError(f"padding must be 'max_length' or 'batch'; got {self.padding!r}.")
        trainable_blocks(self.trainable, get_config(self.model_size)["n_layers"])

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown setting(s) {sorted(unknown)}; valid: {sorted(known)}.")
        return cls(**values)


@dataclass
class FinetuneResult:
    """What a run produced: the book's five training results plus final numbers and files."""

    config: dict[str, Any]
    train_losses: list[float]
    val_losses: list[float]
    train_accs: list[float]
    val_accs: list[float]
    examples_seen: int
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    test_metrics: dict[str, Any]
    max_length: int
    trainable: str
    seconds: float
    files: dict[str, str] = field(default_factory=dict)
    model: GPTModel | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("model")
        return out


def resolve_data_file(data: str | None, verbose: bool = True) -> Path:
    """The SMS file a run reads.

    A plain file given as ``data`` is read where it is: the book's ``SMSSpamCollection``, or
    your own messages in the same ``ham<TAB>text`` format (then a note says the numbers will
    not be the book's). A zip or a folder, or nothing, goes through
    :func:`download_and_unzip_spam_data`, which checks the book's sha256.
    """
    if data:
        path = Path(data).expanduser()
        if path.is_file() and not zipfile.is_zipfile(path):
            if verbose and sha256_of(path) != SPAM_SHA256:
                print(f"Note: {path} is not the book's SMSSpamCollection (its sha256 differs); "
                      "using it as given, so counts and accuracies will differ from the book's.")
            return path
    return download_and_unzip_spam_data(local_copy=data, verbose=verbose)


def build_datasets(cfg: FinetuneConfig, tokenizer, data_dir: Path, context_length: int,
                   verbose: bool = True) -> tuple[SpamDataset, SpamDataset, SpamDataset]:
    """The three splits as datasets (validation and test truncated to the training length)."""
    data_file = resolve_data_file(cfg.data, verbose)
    train_csv, val_csv, test_csv = prepare_spam_splits(data_file, data_dir)
    train_df = pd.read_csv(train_csv)
    if cfg.train_limit is not None:
        train_df = train_df.iloc[: cfg.train_limit]
    return spam_datasets(train_df, val_csv, test_csv, tokenizer, max_length=cfg.max_length,
                         padding=cfg.padding, context_length=context_length)


def base_model(model_size: str, weights: str = "pretrained", drop_rate: float = 0.0, seed: int = 123,
               progress: bool = True) -> GPTModel:
    """GPT-2 with its language-model head, in eval mode: OpenAI's weights, or random ones
    created right after ``torch.manual_seed(seed)`` (the book's initial weights for that seed)."""
    if weights == "pretrained":
        return GPTModel.from_pretrained(model_size, drop_rate=drop_rate, progress=progress)
    if weights != "random":
        raise ValueError(f"weights must be 'pretrained' or 'random'; got {weights!r}.")
    torch.manual_seed(seed)
    return GPTModel(get_config(model_size, drop_rate=drop_rate)).eval()


def build_model(cfg: FinetuneConfig, device: torch.device, progress: bool = True) -> GPTModel:
    """GPT-2 of the chosen size, pretrained or random, with the classification head."""
    model = base_model(cfg.model_size, cfg.weights, cfg.drop_rate, cfg.seed, progress)
    model = add_classification_head(model, num_classes=2, trainable=cfg.trainable, seed=cfg.seed, inplace=True)
    return model.to(device)


def run_finetune(cfg: FinetuneConfig | None = None, *, callback=None, progress: bool = True,
                 verbose: bool = True, save: bool = True) -> FinetuneResult:
    """Run the chapter end to end; returns a :class:`FinetuneResult` (model included).

    Writes ``metrics.json`` and ``classifier.pth`` (with its config) to ``cfg.output`` and the
    loss/accuracy plots to ``cfg.figures`` unless ``save=False``.
    """
    cfg = cfg or FinetuneConfig()
    cfg.check()
    cfg = cfg.effective()
    say = print if verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    device = get_device(cfg.device)
    output = Path(cfg.output)
    tokenizer = get_tokenizer()
    context_length = get_config(cfg.model_size)["context_length"]

    train_ds, val_ds, test_ds = build_datasets(cfg, tokenizer, output / "data", context_length, verbose)
    model = build_model(cfg, device, progress=progress)
    runner = wrap_for_speed(model, cfg.speed)
    # Fast mode groups messages of similar length into batches so that little padding is
    # computed. Where training computes only the last block's read position over kept
    # activations, padding costs next to nothing, and the book's shuffled batches (which mix
    # short and long messages, ham and spam) are kept.
    group = cfg.speed == "fast" and not (runner is not model and runner.padding_is_cheap_in_training(cfg.token))
    loaders = create_data_loaders(train_ds, val_ds, test_ds, batch_size=cfg.batch_size, seed=cfg.seed,
                                  group_by_length=group)
    train_loader, val_loader, test_loader = loaders
    say(f"Data: {len(train_ds)}/{len(val_ds)}/{len(test_ds)} messages, max_length {train_ds.max_length}, "
        f"{len(train_loader)}/{len(val_loader)}/{len(test_loader)} batches of {cfg.batch_size}"
        f"{', grouped by length' if group else ''}")
    say(f"Model: {cfg.model_size}, {cfg.weights} weights, on {device}; {trainable_summary(model)}")
    if runner is not model:
        datasets = (train_ds, val_ds, test_ds)
        need = estimate_cache_bytes(datasets, cfg.token, model.cfg["emb_dim"], runner.cache_dtype)
        say(f"Speed '{cfg.speed}': {runner.explain(cfg.token)}\n"
            f"Kept activations need about {need / 2**20:,.0f} MiB ({runner.cache_dtype}); "
            f"limit {runner.max_cache_bytes / 2**30:.1f} GiB.")
        if runner.reuse_on():
            runner.warm_up(datasets, token=cfg.token, progress=progress)

    torch.manual_seed(cfg.seed)
    # fast mode also takes PyTorch's fused AdamW (one kernel per step instead of many; the
    # same update up to rounding); the other speeds keep the book's optimizer as it is.
    fused = {"fused": True} if cfg.speed == "fast" and device.type in ("cpu", "cuda") else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    history = train_classifier_simple(
        runner, train_loader, val_loader, optimizer, device, num_epochs=cfg.epochs,
        eval_freq=cfg.eval_freq, eval_iter=cfg.eval_iter, token=cfg.token,
        progress=progress, callback=callback, verbose=verbose,
    )
    kw = {"token": cfg.token}
    train_acc = calc_accuracy_loader(train_loader, runner, device, **kw)
    val_acc = calc_accuracy_loader(val_loader, runner, device, **kw)
    test_acc = calc_accuracy_loader(test_loader, runner, device, **kw)
    test_metrics = classification_metrics(test_loader, runner, device, **kw)
    seconds = time.perf_counter() - start
    say(f"Training accuracy: {train_acc * 100:.2f}%\nValidation accuracy: {val_acc * 100:.2f}%\n"
        f"Test accuracy: {test_acc * 100:.2f}%  ({seconds:.1f} s)")

    result = FinetuneResult(
        config=asdict(cfg), train_losses=history[0], val_losses=history[1], train_accs=history[2],
        val_accs=history[3], examples_seen=history[4], train_accuracy=train_acc, val_accuracy=val_acc,
        test_accuracy=test_acc, test_metrics=test_metrics, max_length=train_ds.max_length,
        trainable=trainable_summary(model), seconds=seconds, model=model,
    )
    if save:
        _save_outputs(result, cfg, model, output)
        for key, path in result.files.items():
            say(f"wrote {key}: {path}")
    return result


def _save_outputs(result: FinetuneResult, cfg: FinetuneConfig, model: GPTModel, output: Path) -> None:
    checkpoint = save_classifier(
        model, output / "classifier.pth", max_length=result.max_length, token=cfg.token,
        pad_token_id=50256, class_names=list(CLASS_NAMES), finetune_config=asdict(cfg),
    )
    result.files["checkpoint"] = str(checkpoint)
    if cfg.figures and result.train_losses and result.train_accs:
        from gptlib.plots import plot_training

        plot_training(result.train_losses, result.val_losses, result.train_accs, result.val_accs,
                      result.examples_seen, cfg.epochs, output_dir=cfg.figures, show=False)
        for label in ("loss", "accuracy"):
            result.files[f"{label}_plot"] = str(Path(cfg.figures) / f"{label}-plot.png")
    metrics_path = output / "metrics.json"
    result.files["metrics"] = str(metrics_path)
    atomic_write_bytes(metrics_path, json.dumps(result.to_json(), indent=2).encode())
