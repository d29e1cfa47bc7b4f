"""The whole chapter in one call: data, pretrained GPT-2, new head, training, evaluation, plots.

``run_finetune(FinetuneConfig())`` reproduces the book's run; the command line
(``python -m gptlib finetune``), the notebooks and the lab all go through it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gptlib import speed
from gptlib.classifier import (
    save_classifier,
    set_causal_mask,
    set_dropout,
    trainable_summary,
)
from gptlib.data import (
    CLASS_NAMES,
    SPAM_BACKUP_URL,
    SPAM_SHA256,
    SPAM_URL,
    SpamDataset,
    create_data_loaders,
    download_and_unzip_spam_data,
    prepare_spam_splits,
    random_split,
    shipped_spam_file,
    spam_datasets,
)
from gptlib.lora import add_lora, describe_lora, merge_lora, save_lora
from gptlib.model import GPTModel
from gptlib.models import any_config
from gptlib.models.hf_tokenizer import run_tokenizer
from gptlib.settings import FinetuneConfig
from gptlib.speed.memory import run_memory_line
from gptlib.speed.shared_base import (
    base_model,
    classifier_from_base,
    own_parameters,
    own_trainable,
)
from gptlib.support.device import get_device
from gptlib.support.files import atomic_folder, atomic_write_bytes, check_writable, sha256_of
from gptlib.support.labels import check_label_range
from gptlib.support.noise import interval_text
from gptlib.support.sms_files import have_book_file
from gptlib.tokenizer import END_OF_TEXT_ID
from gptlib.train import (
    calc_accuracy_loader,
    classification_metrics,
    train_classifier_simple,
)

__all__ = ["FinetuneConfig", "FinetuneResult", "base_model", "build_model", "run_finetune", "run_finetune_seeds"]

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
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    files: dict[str, str] = field(default_factory=dict)
    splits: dict[str, Any] = field(default_factory=dict)  # run_finetune(evaluate_splits=...)'s results
    pad_token_id: int = END_OF_TEXT_ID  # GPT-2's; an open model's own where its tokenizer is used
    tokenizer: str = "gpt2"  # whose tokenizer the run used: GPT-2's, or an open model's preset
    model: GPTModel | None = field(default=None, repr=False)
    loaders: tuple | None = field(default=None, repr=False)  # (train, validation, test)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "loaders")}
        return json.loads(json.dumps(out, default=str))


def resolve_data_file(data: str | None, verbose: bool = True, url: str | None = None,
                      timeout: float | None = None, shipped: bool = True) -> Path:
    """The SMS file a run reads. A plain file given as ``data`` is read where it is (a note says
    when it is not the book's); a zip or a folder goes through :func:`download_and_unzip_spam_data`
    (sha256 checked). With nothing given: an earlier download or ``$GPTLIB_DATA_DIR``; else the
    copy shipped with gptlib (``shipped=True``); else, or for a ``url``, the book's download."""
    say = print if verbose else (lambda *a, **k: None)
    if data:
        path = Path(data).expanduser()
        if path.is_file() and not zipfile.is_zipfile(path):
            if sha256_of(path) != SPAM_SHA256:
                say(f"Note: {path} is not the book's SMSSpamCollection (its sha256 differs); "
                    "using it as given, so counts and accuracies will differ from the book's.")
            return path
        return download_and_unzip_spam_data(local_copy=data, verbose=verbose)
    url = url or os.environ.get("GPTLIB_DATA_URL")
    if shipped and not url and not have_book_file():
        path = shipped_spam_file()
        say(f"Data: the SMS Spam Collection shipped with gptlib (CC BY 4.0, the book's file, sha256 checked): {path}")
        return path
    url = url or SPAM_URL
    return download_and_unzip_spam_data(url, local_copy=None, verbose=verbose, timeout=timeout or 60.0,
                                        backup_url=SPAM_BACKUP_URL if url == SPAM_URL else None)


def build_datasets(cfg: FinetuneConfig, tokenizer, data_dir: Path, context_length: int, verbose: bool = True,
                   pad_token_id: int = END_OF_TEXT_ID) -> tuple[SpamDataset, SpamDataset, SpamDataset, list[str]]:
    """The three splits as datasets (validation and test truncated to the training length),
    and the class names: the book's SMS data, or your own CSV files (``cfg.csv`` or
    ``cfg.train_csv``/``val_csv``/``test_csv``, any number of classes)."""
    if cfg.csv or cfg.train_csv:
        from gptlib.support.own_data import own_data_splits

        train_df, val_src, test_src, names = own_data_splits(cfg.train_csv, cfg.val_csv, cfg.test_csv, csv=cfg.csv,
                                                             split=random_split)
        if verbose:
            columns = train_df.attrs.get("columns", {})
            read = ", ".join(f"{given!r} as {role}" for role, given in columns.items() if given != role)
            print(f"Your data: {len(names)} classes ({', '.join(names)}), from "
                  f"{cfg.csv or ', '.join(map(str, (cfg.train_csv, cfg.val_csv, cfg.test_csv)))}"
                  + (f" (columns {read})" if read else ""))
    else:
        data_file = resolve_data_file(cfg.data, verbose, cfg.data_url, cfg.download_timeout)
        train_csv, val_src, test_src = prepare_spam_splits(data_file, data_dir)
        train_df, names = pd.read_csv(train_csv), list(CLASS_NAMES)
    if cfg.train_limit is not None:
        train_df = train_df.iloc[: cfg.train_limit]
    padding = "batch" if cfg.padding == "none" else cfg.padding  # batch 1: each message as it is
    datasets = spam_datasets(train_df, val_src, test_src, tokenizer, max_length=cfg.max_length,
                             padding=padding, context_length=context_length, pad_token_id=pad_token_id)
    return (*datasets, names)


def build_model(cfg: FinetuneConfig, device: torch.device, progress: bool = True,
                num_classes: int = 2, private: bool = False) -> GPTModel:
    """GPT-2 of the chosen size, pretrained or random, with the classification head, the
    causal mask on or off, and LoRA adapters for ``trainable="lora"``. The frozen part is
    shared with the process's base model (loaded once, see :mod:`gptlib.speed.shared_base`);
    what trains is the run's own (``private=True``: everything is)."""
    lora = cfg.trainable == "lora"
    model = classifier_from_base(cfg.model_size, cfg.weights, trainable="head" if lora else cfg.trainable,
                                 num_classes=num_classes, drop_rate=cfg.drop_rate,
                                 dropout_scope=cfg.dropout_scope or "all", seed=cfg.seed, device=device,
                                 progress=progress, timeout=cfg.download_timeout)
    if lora:  # appendix E's order: the head first, then everything frozen, then the adapters
        model = add_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_scaling, cfg.lora_head,
                         cfg.lora_merged, inplace=True).to(device)
        # dropout's scope "trainable" now covers every block, since every block has adapters
        model = set_dropout(model, cfg.drop_rate, scope=cfg.dropout_scope or "all", inplace=True)
    if not cfg.causal_mask:
        model = set_causal_mask(model, False, inplace=True)
    return own_parameters(model) if private else own_trainable(model)


def run_finetune(cfg: FinetuneConfig | None = None, *, callback=None, progress: bool = True,
                 verbose: bool = True, save: bool = True,
                 prepare_model: Callable[[GPTModel], GPTModel | None] | None = None,
                 evaluate_splits: Callable[..., Any] | None = None) -> FinetuneResult:
    """Run the chapter end to end; returns a :class:`FinetuneResult` (model included).

    Unless ``save=False``, the run's files land in ``cfg.output`` as one set, all at once
    (:func:`gptlib.support.files.atomic_folder`): ``classifier.pth`` (with its config),
    ``metrics.json``, ``plots/``, the data splits, and for LoRA ``lora_adapter.pt``. A run
    stopped at any moment leaves the previous set as it was. The plots are then copied to
    ``cfg.figures``. Folders that cannot be written are reported before training starts.
    ``prepare_model(model)`` may change the classifier before it trains (an assignment's
    freezing by hand, say); it returns the model to train, or None for the same one. It gets a
    model of its own (nothing shared with the process's base model), so whatever it changes
    never reaches the next run. ``evaluate_splits(loader, model, device, token)``, if given, is
    called for each split after training; its results land in ``result.splits``.
    """
    cfg = cfg or FinetuneConfig()
    cfg.check()
    cfg = cfg.effective()
    if not save:
        with tempfile.TemporaryDirectory(prefix="gptlib-run-") as work:
            return _train_and_evaluate(cfg, Path(work), callback, progress, verbose, prepare_model,
                                       evaluate_splits)
    output = Path(cfg.output)
    check_writable(cfg.output, cfg.figures)
    with atomic_folder(output, carry=lambda name: name not in RUN_FILES) as work:
        result = _train_and_evaluate(cfg, work, callback, progress, verbose, prepare_model, evaluate_splits)
        _save_outputs(result, cfg, result.model, work, output)
    if cfg.figures and (output / "plots").is_dir():
        for plot in sorted((output / "plots").iterdir()):
            atomic_write_bytes(Path(cfg.figures) / plot.name, plot.read_bytes())
    if verbose:
        for key, path in result.files.items():
            print(f"wrote {key}: {path}")
    return result


# What one run writes into its folder; anything else there (other runs' seed-* folders, your
# own files) is kept when a new run replaces the set.
RUN_FILES = ("classifier.pth", "metrics.json", "lora_adapter.pt", "plots", "data")


def _train_and_evaluate(cfg: FinetuneConfig, work: Path, callback, progress: bool, verbose: bool,
                        prepare_model: Callable[[GPTModel], GPTModel | None] | None = None,
                        evaluate_splits: Callable[..., Any] | None = None) -> FinetuneResult:
    """The run itself (``cfg`` checked and effective); the data splits are written to ``work``."""
    say = print if verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    device = get_device(cfg.device)
    # GPT-2's BPE; for Qwen3 and Llama their own where it is here (the line says which)
    tokenizer, pad, tokenizer_name, line = run_tokenizer(cfg.model_size, cfg.weights, cfg.download_timeout)
    if line:
        say(line)
    context_length = any_config(cfg.model_size)["context_length"]

    train_ds, val_ds, test_ds, class_names = build_datasets(cfg, tokenizer, work / "data", context_length,
                                                            verbose, pad)
    check_label_range({"training": train_ds.labels, "validation": val_ds.labels, "test": test_ds.labels},
                      len(class_names), class_names)
    say(run_memory_line(cfg, device, train_ds, len(class_names)))
    model = build_model(cfg, device, progress=progress, num_classes=len(class_names),
                        private=prepare_model is not None)
    if prepare_model is not None:  # code that may change anything: the model is all its own
        changed = prepare_model(model)
        model = own_trainable(model if changed is None else changed)
    say(f"Model: {cfg.model_size}, {cfg.weights} weights, on {device}; {trainable_summary(model)}")
    if cfg.trainable == "lora":
        say(describe_lora(model))
    if not cfg.causal_mask:
        say("Causal mask off: every token attends to every token, pads included.")
    fast = speed.prepare(model, cfg, (train_ds, val_ds, test_ds), device=device, say=say, progress=progress)
    runner = fast.runner
    loaders = create_data_loaders(train_ds, val_ds, test_ds, batch_size=cfg.batch_size, seed=cfg.seed,
                                  train_batch_sampler=fast.train_batch_sampler)
    train_loader, val_loader, test_loader = loaders
    say(f"Data: {len(train_ds)}/{len(val_ds)}/{len(test_ds)} messages, max_length {train_ds.max_length}, "
        f"{len(train_loader)}/{len(val_loader)}/{len(test_loader)} batches of {cfg.batch_size}")

    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  **fast.optimizer_kwargs)
    history = train_classifier_simple(
        runner, train_loader, val_loader, optimizer, device, num_epochs=cfg.epochs,
        eval_freq=cfg.eval_freq, eval_iter=cfg.eval_iter, token=cfg.token,
        progress=progress, callback=callback, verbose=verbose, pad_token_id=pad,
        accumulation_steps=cfg.accumulation_steps, ignore_index=cfg.ignore_index,
    )
    kw = {"token": cfg.token, "pad_token_id": pad}
    train_acc = calc_accuracy_loader(train_loader, runner, device, **kw)
    val_acc = calc_accuracy_loader(val_loader, runner, device, **kw)
    test_metrics = classification_metrics(test_loader, runner, device, **kw)
    test_acc = test_metrics["accuracy"]  # the same predictions calc_accuracy_loader counts
    splits = {}
    if evaluate_splits is not None:  # e.g. the assignments' numbers: on the book's loaders, seeded afresh
        loaders = create_data_loaders(train_ds, val_ds, test_ds, batch_size=cfg.batch_size, seed=cfg.seed)
        splits = {name: evaluate_splits(loader, runner, device, cfg.token)
                  for name, loader in zip(("train", "validation", "test"), loaders)}
    fast.release()
    seconds = time.perf_counter() - start
    say(f"Training accuracy: {train_acc * 100:.2f}%\nValidation accuracy: {val_acc * 100:.2f}%\nTest accuracy: "
        f"{test_acc * 100:.2f}% ({interval_text(test_acc, len(test_loader.dataset))})  ({seconds:.1f} s)")

    result = FinetuneResult(
        config=asdict(cfg), train_losses=history[0], val_losses=history[1], train_accs=history[2],
        val_accs=history[3], examples_seen=history[4], train_accuracy=train_acc, val_accuracy=val_acc,
        test_accuracy=test_acc, test_metrics=test_metrics, max_length=train_ds.max_length,
        trainable=trainable_summary(model), seconds=seconds, model=model, class_names=class_names,
        splits=splits, loaders=loaders, pad_token_id=pad, tokenizer=tokenizer_name,
    )
    return result


def run_finetune_seeds(cfg: FinetuneConfig, seeds: int, **kwargs: Any) -> tuple[list[FinetuneResult], dict[str, Any]]:
    """``cfg`` run ``seeds`` times, with seeds ``cfg.seed``, ``cfg.seed + 1``, ...: the noise of a
    setting made visible. Each run's files go to ``<output>/seed-<seed>`` (plots only for the
    first). Returns the results and :func:`gptlib.support.noise.summarize` of their test accuracies;
    ``kwargs`` go to :func:`run_finetune`. The frozen part is computed once for all seeds
    with pretrained weights (with random ones each seed is another model)."""
    from gptlib.support.noise import summarize

    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}.")
    if seeds == 1:
        result = run_finetune(cfg, **kwargs)
        return [result], summarize([result.test_accuracy], int(result.test_metrics.get("n") or 1))
    results = []
    for i in range(seeds):
        seed = cfg.seed + i
        one = replace(cfg, seed=seed, output=str(Path(cfg.output) / f"seed-{seed}"),
                      figures=cfg.figures if i == 0 else None)
        results.append(run_finetune(one, **kwargs))
    n = int(results[0].test_metrics.get("n") or 1)
    return results, summarize([r.test_accuracy for r in results], n)


def _save_outputs(result: FinetuneResult, cfg: FinetuneConfig, model: GPTModel, work: Path, output: Path) -> None:
    """Write the run's set into ``work`` (the staging folder), recording where each file will be."""
    plain = model
    if cfg.trainable == "lora":  # the adapters alone, and the classifier with them folded in
        save_lora(model, work / "lora_adapter.pt")
        result.files["adapter"] = str(output / "lora_adapter.pt")
        plain = merge_lora(model)
    save_classifier(plain, work / "classifier.pth", max_length=result.max_length, token=cfg.token,
                    pad_token_id=result.pad_token_id, tokenizer=result.tokenizer, class_names=list(result.class_names), finetune_config=asdict(cfg))
    result.files["checkpoint"] = str(output / "classifier.pth")
    if result.train_losses and result.train_accs:
        import matplotlib.pyplot as plt

        from gptlib.plots import plot_training

        figures = plot_training(result.train_losses, result.val_losses, result.train_accs, result.val_accs,
                                result.examples_seen, cfg.epochs, output_dir=work / "plots", show=False)
        for figure in figures:
            plt.close(figure)
        for label in ("loss", "accuracy"):
            result.files[f"{label}_plot"] = str(Path(cfg.figures or output / "plots") / f"{label}-plot.png")
    result.files["metrics"] = str(output / "metrics.json")
    atomic_write_bytes(work / "metrics.json", json.dumps(result.to_json(), indent=2).encode())
