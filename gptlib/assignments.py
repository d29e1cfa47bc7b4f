"""Classroom assignments for Chapter 6: a shared experiment runner, the check functions the
assignment notebooks call, and the builder of the student versions.

The assignments live in ``notebooks/assignments/`` (``A01_*.ipynb`` ...). Each holds the
teacher's solutions between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` markers, as
nbgrader does; :func:`build_student_versions` (or ``python -m gptlib assignments build OUTDIR``)
writes copies in which every such region is replaced by a placeholder.

Check functions test what the student's code computed (shapes, parameter counts, metrics
recomputed from predictions, the direction in which a change moved the loss), never the code's
text. They print one line starting with ``OK`` when all is well, and otherwise raise
``AssertionError`` with a message that says what is wrong and how to fix it. A placeholder
(``None``, or a function that raises ``NotImplementedError``) always fails.

Nothing here imports ipywidgets; matplotlib is imported only by :func:`plot_runs`.
"""

from __future__ import annotations

import copy
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from gptlib.classifier import classifier_logits, last_real_index
from gptlib.device import get_device
from gptlib.download import atomic_write_bytes
from gptlib.model import count_parameters
from gptlib.train import classification_metrics, predict_proba, train_classifier_simple

SPLITS = ("train", "validation", "test")
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
CODE_PLACEHOLDER = ("# YOUR CODE HERE", "raise NotImplementedError()")
ANSWER_PLACEHOLDER = "YOUR ANSWER HERE"
DEFAULT_CACHE_BYTES = 2**30  # kept activations of the frozen layers, at most 1 GiB


# --- running experiments -------------------------------------------------------------------


@dataclass
class Run:
    """One fine-tuning run made by :func:`run_experiment`: its settings, curves and results.

    ``accuracy`` and ``loss`` hold the final numbers on the whole of each split
    (``"train"``, ``"validation"``, ``"test"``); the curves are those of the book's
    ``train_classifier_simple`` (losses every ``eval_freq`` steps, accuracies every epoch,
    on ``eval_iter`` batches). ``model`` is the trained classifier, ``loaders`` the data.
    """

    name: str
    profile: str
    data_file: str | None  # the profile's data file (the smoke fixture), None for the real data
    token: str
    padding: str
    max_length: int
    train_size: int
    batch_size: int
    epochs: int
    lr: float
    weight_decay: float
    drop_rate: float
    eval_freq: int
    trainable_params: int
    total_params: int
    train_losses: list[float]
    val_losses: list[float]
    train_accs: list[float]
    val_accs: list[float]
    examples_seen: int
    accuracy: dict[str, float]
    loss: dict[str, float]
    seconds: float
    model: nn.Module = field(repr=False)
    loaders: tuple[DataLoader, DataLoader, DataLoader] = field(repr=False)

    def row(self) -> dict[str, Any]:
        """The run's final numbers, flat, for a table (accuracies in %)."""
        out: dict[str, Any] = {f"{s} acc %": 100 * self.accuracy[s] for s in SPLITS}
        out.update({f"{s} loss": self.loss[s] for s in SPLITS})
        out.update({"token": self.token, "padding": self.padding, "max_length": self.max_length,
                    "trainable": self.trainable_params, "seconds": self.seconds})
        return out


def dropout_rate(model: nn.Module) -> float:
    """The largest ``p`` of the model's dropout layers (0.0 when it has none)."""
    return max((m.p for m in model.modules() if isinstance(m, nn.Dropout)), default=0.0)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def evaluate_loader(loader: DataLoader, model: nn.Module, device: torch.device | str,
                    token: str = "last", pad_token_id: int = 50256) -> tuple[float, float]:
    """Accuracy and mean cross-entropy per message over a whole loader, in one pass."""
    model.eval()
    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            logits = classifier_logits(model, inputs, token, pad_token_id)
            loss_sum += F.cross_entropy(logits.float(), targets, reduction="sum").item()
            correct += (logits.argmax(dim=-1) == targets).sum().item()
            total += len(targets)
    if total == 0:
        return float("nan"), float("nan")
    return correct / total, loss_sum / total


def collect_predictions(loader: DataLoader, model: nn.Module, device: torch.device | str | None = None,
                        token: str = "last", pad_token_id: int = 50256) -> tuple[list[int], list[int]]:
    """(predicted class ids, true class ids) for every message of a loader, in loader order."""
    device = device if device is not None else model_device(model)
    model.eval()
    preds: list[int] = []
    labels: list[int] = []
    with torch.no_grad():
        for inputs, targets in loader:
            logits = classifier_logits(model, inputs.to(device), token, pad_token_id)
            preds += logits.argmax(dim=-1).tolist()
            labels += targets.tolist()
    return preds, labels


def run_experiment(model: nn.Module, loaders: Sequence[DataLoader], profile: Any, *, name: str = "",
                   token: str = "last", lr: float | None = None, weight_decay: float | None = None,
                   epochs: int | None = None, speed: str = "exact", progress: bool = True,
                   verbose: bool = False, max_cache_bytes: int = DEFAULT_CACHE_BYTES) -> Run:
    """Fine-tune a copy of ``model`` the book's way and evaluate it on every split.

    ``loaders`` are (train, validation, test) from ``create_data_loaders``; ``profile`` (from
    ``load_profile``) gives the device, seed, epochs, learning rate, weight decay and how
    often to evaluate; ``lr``, ``weight_decay`` and ``epochs`` override it. As in the book,
    the seed is set right before the optimizer is made. ``model`` itself is not changed, so
    the cell that calls this can be re-run. ``speed="exact"`` reuses the frozen layers'
    activations (``gptlib.fast``): the same results as ``"book"``, faster.
    """
    from gptlib.fast import CachedClassifier

    if model is None:
        raise ValueError("model is None: make the classifier (the task above) first.")
    if loaders is None or len(loaders) != 3:
        raise ValueError("loaders must be the (train, validation, test) loaders from create_data_loaders; "
                         f"got {'None' if loaders is None else f'{len(loaders)} item(s)'}.")
    train_loader, val_loader, test_loader = loaders
    lr = profile.lr if lr is None else lr
    weight_decay = profile.weight_decay if weight_decay is None else weight_decay
    epochs = profile.epochs if epochs is None else epochs
    device = get_device(profile.device)
    start = time.perf_counter()
    clf = copy.deepcopy(model).to(device)
    runner: nn.Module = clf
    if speed == "exact":
        runner = CachedClassifier(clf, max_cache_bytes=max_cache_bytes)
    elif speed != "book":
        raise ValueError(f"speed must be 'exact' or 'book'; got {speed!r}.")
    torch.manual_seed(profile.seed)
    optimizer = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    history = train_classifier_simple(
        runner, train_loader, val_loader, optimizer, device, num_epochs=epochs,
        eval_freq=profile.eval_freq, eval_iter=profile.eval_iter, token=token,
        progress=progress, verbose=verbose)
    accuracy, loss = {}, {}
    for split, loader in zip(SPLITS, loaders):
        accuracy[split], loss[split] = evaluate_loader(loader, runner, device, token)
    if isinstance(runner, CachedClassifier):
        runner.clear_cache()
    seconds = time.perf_counter() - start
    train_ds = train_loader.dataset
    data_file = getattr(profile, "data_file", None)
    run = Run(
        name=name, profile=getattr(profile, "name", "?"),
        data_file=None if data_file is None else str(data_file), token=token,
        padding=getattr(train_ds, "padding", "max_length"),
        max_length=int(getattr(train_ds, "max_length", 0)), train_size=len(train_ds),
        batch_size=int(train_loader.batch_size or getattr(train_loader.batch_sampler, "batch_size", 0)),
        epochs=epochs, lr=lr, weight_decay=weight_decay, drop_rate=dropout_rate(clf),
        eval_freq=profile.eval_freq, trainable_params=count_parameters(clf, trainable_only=True),
        total_params=count_parameters(clf), train_losses=history[0], val_losses=history[1],
        train_accs=history[2], val_accs=history[3], examples_seen=history[4],
        accuracy=accuracy, loss=loss, seconds=seconds, model=clf.eval(), loaders=tuple(loaders),
    )
    label = f"{name}: " if name else ""
    print(f"{label}accuracy train {accuracy['train']:.2%}, validation {accuracy['validation']:.2%}, "
          f"test {accuracy['test']:.2%} | loss train {loss['train']:.3f}, validation "
          f"{loss['validation']:.3f} | {seconds:.1f} s")
    return run


def compare_runs(runs: Mapping[str, Run], reference: Mapping[str, float] | None = None,
                 reference_label: str = "book test acc %"):
    """A table (pandas DataFrame) of the runs' final numbers, one row per run.

    ``reference`` adds a column, e.g. the book's test accuracy for each run's name.
    """
    import pandas as pd

    table = pd.DataFrame({name: run.row() for name, run in runs.items() if run is not None}).T
    if reference is not None:
        table[reference_label] = [reference.get(name, float("nan")) for name in table.index]
    return table


def plot_runs(runs: Mapping[str, Run], what: str = "loss"):
    """Training and validation curves of several runs side by side (``what``: loss or accuracy).

    Losses are plotted against the optimizer step at which they were measured, accuracies
    against the epoch. Returns the matplotlib figure (closed, so a notebook shows it once,
    as the cell's value).
    """
    from gptlib.plots import plt  # gptlib.plots picks an off-screen backend outside Jupyter

    shown = {name: run for name, run in runs.items() if run is not None}
    if not shown:
        raise ValueError("No runs to plot.")
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3), sharey=True, squeeze=False)
    for ax, (name, run) in zip(axes[0], shown.items()):
        if what == "loss":
            steps = [i * run.eval_freq for i in range(len(run.train_losses))]
            ax.plot(steps, run.train_losses, label="training")
            ax.plot(steps, run.val_losses, linestyle="-.", label="validation")
            ax.set_xlabel("optimizer step")
        elif what == "accuracy":
            epochs = list(range(1, len(run.train_accs) + 1))
            ax.plot(epochs, run.train_accs, marker="o", label="training")
            ax.plot(epochs, run.val_accs, marker="o", linestyle="-.", label="validation")
            ax.set_xlabel("epoch")
        else:
            raise ValueError(f"what must be 'loss' or 'accuracy'; got {what!r}.")
        ax.set_title(name, fontsize=10)
    axes[0][0].set_ylabel(what)
    axes[0][0].legend()
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value, not a second time by the inline backend
    return fig


# --- helpers of the checks -----------------------------------------------------------------


def _fail(message: str) -> None:
    raise AssertionError(message)


def _ok(message: str) -> None:
    print(f"OK: {message}")


def _require(value: Any, name: str, hint: str) -> None:
    if value is None:
        _fail(f"`{name}` is still None: {hint}")


def _require_run(run: Any, name: str) -> Run:
    _require(run, name, "set it to what run_experiment(...) returns.")
    if not isinstance(run, Run):
        _fail(f"`{name}` should be what run_experiment(...) returns (a Run); got {type(run).__name__}.")
    return run


def _call(fn: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call a student's function; a placeholder or an error becomes feedback."""
    _require(fn, name, "define the function in the cell above.")
    if not callable(fn):
        _fail(f"`{name}` should be a function; got {type(fn).__name__}.")
    shown = ", ".join([*(_short(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        _fail(f"`{name}` is not written yet (it raises NotImplementedError): "
              "replace the placeholder with your code and run its cell again.")
    except Exception as err:  # the student's bug, reported as feedback
        raise AssertionError(f"{name}({shown}) raised {type(err).__name__}: {err}") from err


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{value.tolist()}" if value.numel() <= 12 else f"<tensor of shape {tuple(value.shape)}>"
    if isinstance(value, nn.Module):
        return f"<{type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)  # numpy scalars
        except (TypeError, ValueError):
            _fail(f"`{name}` should be a number; got {type(value).__name__} {_short(value)}.")
    return float(value)


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def _context_length(model: nn.Module) -> int:
    return int(model.pos_emb.weight.shape[0])


def _emb_dim(model: nn.Module) -> int:
    return int(model.tok_emb.weight.shape[1])


def _check_loaders(loaders: Any, name: str) -> tuple[DataLoader, DataLoader, DataLoader]:
    if not isinstance(loaders, (tuple, list)) or len(loaders) != 3:
        _fail(f"`{name}` should be the (train, validation, test) loaders that create_data_loaders "
              f"returns; got {type(loaders).__name__}.")
    for split, loader in zip(SPLITS, loaders):
        if not isinstance(loader, DataLoader):
            _fail(f"the {split} item of `{name}` should be a DataLoader; got {type(loader).__name__}.")
    return tuple(loaders)  # type: ignore[return-value]


def _direction_checked(run: Run) -> bool:
    """Whether a change's effect on the loss is reliable enough to require: with the real model
    (book profile), or the smoke profile's tiny model on its own small data file. The tiny
    random model on the real data (smoke with $GPTLIB_DATA_DIR) is no reliable judge."""
    return run.profile == "book" or (run.profile == "smoke" and run.data_file is not None)


_NOT_JUDGED = " (direction not required: a tiny random model on the real data is no reliable judge)"


def _same_setup(run: Run, baseline: Run, name: str, allowed: Sequence[str] = ()) -> None:
    """Fail when ``run`` differs from ``baseline`` in a setting the exercise does not change."""
    settings = {"train_size": "training messages", "batch_size": "batch size", "epochs": "epochs",
                "lr": "learning rate", "weight_decay": "weight decay", "drop_rate": "dropout",
                "token": "token read", "max_length": "padded length", "trainable_params": "trainable parameters"}
    for attr, label in settings.items():
        if attr in allowed:
            continue
        mine, theirs = getattr(run, attr), getattr(baseline, attr)
        if mine != theirs:
            _fail(f"`{name}` differs from the baseline in its {label} ({mine} vs the baseline's "
                  f"{theirs}); change only what the exercise asks, so that the comparison is fair.")


# --- A01: the book's exercises -------------------------------------------------------------


def check_padded_to_context(loaders: Any, base_model: nn.Module, baseline_loaders: Any = None,
                            name: str = "loaders_61") -> None:
    """Exercise 6.1: every split padded (or cut) to the model's context length, the book's way."""
    _require(loaders, name, "build the three datasets with max_length set to the model's context "
             "length, then the loaders with create_data_loaders.")
    loaders = _check_loaders(loaders, name)
    context = _context_length(base_model)
    for split, loader in zip(SPLITS, loaders):
        ds = loader.dataset
        if getattr(ds, "padding", "max_length") != "max_length":
            _fail(f"your {split} set pads per batch; exercise 6.1 uses the book's padding to one "
                  "fixed length (padding='max_length', the default).")
        if getattr(ds, "max_length", None) != context:
            _fail(f"your {split} set is padded to {getattr(ds, 'max_length', '?')} tokens; exercise 6.1 "
                  f"pads every message to the model's context length, {context} (the number of rows "
                  "of base_model.pos_emb). Pass max_length=... to every SpamDataset.")
    inputs, _ = next(iter(loaders[1]))  # validation: not shuffled, so no random numbers are used
    if inputs.shape[1] != context:
        _fail(f"validation batches have shape {tuple(inputs.shape)}; they should be "
              f"(batch, {context}).")
    if baseline_loaders is not None:
        for split, mine, theirs in zip(SPLITS, loaders, baseline_loaders):
            if len(mine.dataset) != len(theirs.dataset):
                _fail(f"your {split} set has {len(mine.dataset)} messages, the baseline's "
                      f"{len(theirs.dataset)}: use the same CSV files, only padded differently.")
    _ok(f"all three splits are padded to {context} tokens; the first validation batch has shape "
        f"{tuple(inputs.shape)}.")


def check_exercise_61(run_61: Any, baseline: Run, base_model: nn.Module) -> None:
    """Exercise 6.1 trained: same settings as the baseline, longer padding, worse fit."""
    run = _require_run(run_61, "run_61")
    context = _context_length(base_model)
    if run.max_length != context:
        _fail(f"run_61 was trained on messages padded to {run.max_length} tokens; train it on "
              f"`loaders_61` (padded to {context}).")
    _same_setup(run, baseline, "run_61", allowed=("max_length",))
    judged = _direction_checked(run)
    if judged and not run.loss["train"] > baseline.loss["train"]:
        _fail(f"padding to {context} tokens should make the training fit worse (the last position "
              f"is now a pad token far from the message): run_61's training loss is "
              f"{run.loss['train']:.3f}, not above the baseline's {baseline.loss['train']:.3f}. "
              "Did you train a fresh classifier with the baseline's settings on `loaders_61`?")
    _ok(f"padded to {context}: training loss {baseline.loss['train']:.3f} -> {run.loss['train']:.3f}, "
        f"test accuracy {baseline.accuracy['test']:.2%} -> {run.accuracy['test']:.2%} "
        f"(the book: 95.67% -> 78.33%){'' if judged else _NOT_JUDGED}.")


def check_all_layers_trainable(model: Any, base_model: nn.Module, num_classes: int = 2,
                               name: str = "model_62") -> None:
    """Exercise 6.2's classifier: a new 2-class head and every parameter trainable."""
    _require(model, name, "make a classifier from base_model with every layer trainable.")
    _check_head(model, base_model, num_classes, name)
    total = count_parameters(model)
    trainable = count_parameters(model, trainable_only=True)
    if trainable != total:
        frozen = sorted({n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad})
        _fail(f"only {trainable:,} of {total:,} parameters of `{name}` are trainable (frozen: "
              f"{', '.join(frozen)}); exercise 6.2 trains all of them. Look at the `trainable` "
              "argument of add_classification_head.")
    _ok(f"all {total:,} parameters of `{name}` are trainable; the head maps "
        f"{_emb_dim(model)} to {num_classes} outputs.")


def _check_head(model: Any, base_model: nn.Module, num_classes: int, name: str) -> None:
    if not isinstance(model, nn.Module) or not hasattr(model, "out_head"):
        _fail(f"`{name}` should be a GPT model with a classification head; got {type(model).__name__}.")
    if model is base_model:
        _fail(f"`{name}` is base_model itself; add_classification_head returns a new model "
              "(a copy), so that base_model stays unchanged for the other experiments.")
    head = model.out_head
    if not isinstance(head, nn.Linear):
        _fail(f"`{name}.out_head` should be a torch.nn.Linear layer; got {type(head).__name__}.")
    if head.in_features != _emb_dim(model) or head.out_features != num_classes:
        extra = (" (that is still the language model's head: one output per vocabulary token)"
                 if head.out_features == model.tok_emb.weight.shape[0] else "")
        _fail(f"your head maps {head.in_features} to {head.out_features} outputs{extra}; it should map "
              f"{_emb_dim(model)} to {num_classes} (one output per class).")
    if getattr(base_model, "out_head", None) is not None and \
            base_model.out_head.out_features != base_model.tok_emb.weight.shape[0]:
        _fail("base_model's own head was replaced; build classifiers as copies "
              "(add_classification_head without inplace=True) and reload base_model.")


def check_exercise_62(run_62: Any, baseline: Run, base_model: nn.Module) -> None:
    """Exercise 6.2 trained: all layers changed, training loss lower than the baseline's."""
    run = _require_run(run_62, "run_62")
    if run.trainable_params != run.total_params:
        _fail(f"run_62 trained {run.trainable_params:,} of {run.total_params:,} parameters; "
              "train `model_62`, whose parameters are all trainable.")
    _same_setup(run, baseline, "run_62", allowed=("trainable_params",))
    before = base_model.tok_emb.weight.detach().cpu()
    after = run.model.tok_emb.weight.detach().cpu()
    if torch.equal(before, after):
        _fail("the token embeddings of run_62's model are unchanged, so the lowest layers did not "
              "train; was every parameter given to the optimizer (run_experiment does that)?")
    judged = _direction_checked(run)
    if judged and not run.loss["train"] < baseline.loss["train"]:
        _fail(f"training every layer should fit the training data better than training the last "
              f"block: run_62's training loss is {run.loss['train']:.3f}, not below the baseline's "
              f"{baseline.loss['train']:.3f}. Did you train `model_62` with the baseline's settings?")
    shift = (after - before).norm().item()
    _ok(f"all layers trained (token embeddings moved by {shift:.3g}); training loss "
        f"{baseline.loss['train']:.3f} -> {run.loss['train']:.3f}, test accuracy "
        f"{baseline.accuracy['test']:.2%} -> {run.accuracy['test']:.2%} (the book: 95.67% -> 96.67%)"
        f"{'' if judged else _NOT_JUDGED}.")


def check_exercise_63(run_63: Any, baseline: Run) -> None:
    """Exercise 6.3 trained: the first token read; its answers depend on the first token only."""
    run = _require_run(run_63, "run_63")
    if run.token != "first":
        _fail(f"run_63 read the {run.token!r} token; exercise 6.3 reads the first one: "
              "pass token='first' to run_experiment.")
    _same_setup(run, baseline, "run_63", allowed=("token",))
    test_loader = run.loaders[2]
    preds, labels = collect_predictions(test_loader, run.model, token="first")
    firsts = [int(ids[0]) for ids, _ in test_loader.dataset]
    answer_of: dict[int, int] = {}
    for first, pred in zip(firsts, preds):
        if answer_of.setdefault(first, pred) != pred:
            _fail("two test messages with the same first token got different answers, so run_63's "
                  "model did not read the first token; train it with token='first'.")
    accuracy = sum(p == y for p, y in zip(preds, labels)) / len(labels)
    if not _close(accuracy, run.accuracy["test"]):
        _fail(f"run_63's test accuracy ({run.accuracy['test']:.4f}) differs from the accuracy of its "
              f"model reading the first token ({accuracy:.4f}); evaluate with token='first' too.")
    if run.profile == "book" and not run.accuracy["validation"] < baseline.accuracy["validation"]:
        _fail(f"with the pretrained model, reading the first token should be clearly worse: the "
              f"book drops from 95.67% to 75.00% test accuracy, but your validation accuracy went "
              f"{baseline.accuracy['validation']:.2%} -> {run.accuracy['validation']:.2%}.")
    _ok(f"{len(labels)} test messages start with {len(answer_of)} different tokens, so this "
        f"classifier can give at most {len(answer_of)} different answers; test accuracy "
        f"{baseline.accuracy['test']:.2%} -> {run.accuracy['test']:.2%} (the book: 95.67% -> 75.00%).")


# --- A02: overfitting, dropout and weight decay ---------------------------------------------


def check_with_dropout(with_dropout: Any, base_model: nn.Module) -> None:
    """``with_dropout(model, rate)``: a copy whose every dropout layer has ``p == rate``."""
    before = [(n, m.p) for n, m in base_model.named_modules() if isinstance(m, nn.Dropout)]
    if not before:
        _fail("base_model has no dropout layers to change; is it a GPTModel?")
    for rate in (0.25, 0.0):
        out = _call(with_dropout, "with_dropout", base_model, rate)
        if out is None:
            _fail("with_dropout returned None; return the new model.")
        if out is base_model:
            _fail("with_dropout changed base_model itself and returned it; work on a copy "
                  "(copy.deepcopy(model)), so that every run starts from the same model.")
        wrong = [(n, m.p) for n, m in out.named_modules() if isinstance(m, nn.Dropout) and m.p != rate]
        if wrong:
            _fail(f"with_dropout(model, {rate}) left {len(wrong)} of {len(before)} dropout layers at "
                  f"other rates, e.g. {wrong[0][0]} has p={wrong[0][1]}; set p on every "
                  "torch.nn.Dropout module (model.modules() visits them all).")
        for (name, p_before), (_, p_now) in zip(before, ((n, m.p) for n, m in base_model.named_modules()
                                                         if isinstance(m, nn.Dropout))):
            if p_before != p_now:
                _fail(f"with_dropout changed base_model's dropout ({name}: {p_before} -> {p_now}); "
                      "change only the copy.")
        same = all(torch.equal(a, b) for a, b in zip(base_model.state_dict().values(),
                                                     out.state_dict().values()))
        if not same:
            _fail("the model with_dropout returned has different weights from base_model; only "
                  "the dropout rates should change.")
    _ok(f"with_dropout sets all {len(before)} dropout layers and leaves base_model unchanged.")


def check_decay_shrink(decay_shrink: Any) -> None:
    """``decay_shrink(lr, weight_decay, steps)``: the factor AdamW's decay alone multiplies a weight by."""
    cases = [(5e-5, 0.1, 650), (0.1, 0.5, 10), (1e-3, 0.0, 100), (0.01, 2.0, 30)]
    for lr, wd, steps in cases:
        got = _number(_call(decay_shrink, "decay_shrink", lr, wd, steps), f"decay_shrink({lr}, {wd}, {steps})")
        want = (1 - lr * wd) ** steps
        if _close(got, want, 1e-9):
            continue
        hint = ""
        if _close(got, 1 - lr * wd * steps, 1e-9):
            hint = (" That is 1 - lr*wd*steps, a straight-line guess; the shrink compounds: every "
                    "step multiplies the weight by (1 - lr*wd).")
        elif _close(got, (1 - wd) ** steps, 1e-9):
            hint = " You left out the learning rate: AdamW scales the decay by lr."
        elif _close(got, 1 - (1 - lr * wd) ** steps, 1e-9):
            hint = " That is how much is removed; return the factor that remains."
        _fail(f"decay_shrink({lr}, {wd}, {steps}) returned {got:.6g}; it should be {want:.6g}.{hint}")
    _ok(f"decay_shrink is right: at the book's settings (lr 5e-5, weight decay 0.1, 650 steps) "
        f"weight decay alone keeps {(1 - 5e-6) ** 650:.4%} of each weight.")


def _trainable_norm(model: nn.Module, names: set[str]) -> float:
    return math.sqrt(sum(p.detach().float().pow(2).sum().item()
                         for n, p in model.named_parameters() if n in names))


def check_regularisation_runs(runs: Any, settings: Mapping[str, tuple[float, float]]) -> None:
    """One run per setting, with the setting's dropout and weight decay; decay shrinks weights."""
    _require(runs, "runs", "fill the dict with one run_experiment(...) result per entry of SETTINGS.")
    if not isinstance(runs, Mapping):
        _fail(f"`runs` should be a dict from setting name to run; got {type(runs).__name__}.")
    missing = [k for k in settings if k not in runs or runs[k] is None]
    if missing:
        _fail(f"`runs` has no run for {missing}; make one run per entry of SETTINGS.")
    first = None
    for name, (drop, wd) in settings.items():
        run = _require_run(runs[name], f"runs[{name!r}]")
        if not _close(run.drop_rate, drop):
            _fail(f"run {name!r} was trained with dropout {run.drop_rate}; SETTINGS asks for {drop}. "
                  f"Build its classifier from with_dropout(base_model, {drop}).")
        if not _close(run.weight_decay, wd):
            _fail(f"run {name!r} was trained with weight decay {run.weight_decay}; SETTINGS asks for "
                  f"{wd}. Pass weight_decay=... to run_experiment.")
        if first is None:
            first = run
        else:
            _same_setup(run, first, f"runs[{name!r}]", allowed=("weight_decay", "drop_rate"))
    no_dropout = [n for n, (d, _) in settings.items() if d == 0]
    low = min(no_dropout, key=lambda n: settings[n][1], default=None)
    high = max(no_dropout, key=lambda n: settings[n][1], default=None)
    if low is None or settings[high][1] <= settings[low][1]:
        _ok(f"{len(settings)} runs with the asked settings.")
        return
    a, b = runs[low], runs[high]
    names = {n for n, p in a.model.named_parameters() if p.requires_grad}
    ratio = _trainable_norm(b.model, names) / _trainable_norm(a.model, names)
    steps = a.examples_seen // max(a.batch_size, 1)
    predicted = ((1 - b.lr * b.weight_decay) / (1 - a.lr * a.weight_decay)) ** steps
    if not ratio < 1:
        _fail(f"the trained weights of {high!r} are not smaller than those of {low!r} (norm ratio "
              f"{ratio:.4f}); was {high!r} trained with weight decay {settings[high][1]}?")
    _ok(f"{len(settings)} runs with the asked settings; the trainable weights of {high!r} are "
        f"{ratio:.2%} the size of those of {low!r} (decay alone predicts {predicted:.2%} "
        f"over {steps} steps).")


def _per_run(value: Any, label: str, runs: Mapping[str, Run], kind: str, wanted: str) -> dict[str, float]:
    """``value`` checked to be a dict with a number for every run (else a message naming ``label``)."""
    _require(value, label, wanted)
    if not isinstance(value, Mapping):
        _fail(f"`{label}` should be a dict from run name to {kind}; got {type(value).__name__}.")
    for name in runs:
        if name not in value:
            _fail(f"`{label}` has no entry for run {name!r}.")
    return {name: _number(value[name], f"{label}[{name!r}]") for name in runs}


def check_gaps(accuracy_gaps: Any, loss_gaps: Any, runs: Mapping[str, Run]) -> None:
    """Train-minus-validation accuracy and validation-minus-train loss, per run (final numbers)."""
    for label, gaps, first, second, unit in (
            ("accuracy_gaps", accuracy_gaps, "train", "validation", "accuracy"),
            ("loss_gaps", loss_gaps, "validation", "train", "loss")):
        values = _per_run(gaps, label, runs, "number",
                          f"a dict: for each run, its final {first} {unit} minus its {second} {unit}.")
        for name, run in runs.items():
            got = values[name]
            table = run.accuracy if unit == "accuracy" else run.loss
            want = table[first] - table[second]
            if _close(got, want, 1e-9):
                continue
            hint = ""
            if _close(got, -want, 1e-9):
                hint = f" The sign is reversed: take {first} minus {second}."
            elif _close(got, 100 * want, 1e-9):
                hint = " Give fractions, as run.accuracy holds them, not percentage points."
            elif unit == "accuracy" and run.train_accs and \
                    _close(got, run.train_accs[-1] - run.val_accs[-1], 1e-9):
                hint = (" That uses the last point of the curves, measured on only a few batches; "
                        "use the final numbers on whole splits (run.accuracy).")
            _fail(f"{label}[{name!r}] is {got:.4f}; it should be {want:.4f} "
                  f"(run.{'accuracy' if unit == 'accuracy' else 'loss'}[{first!r}] - [{second!r}]).{hint}")
    _ok("gaps computed from the final train and validation numbers of every run.")


def check_best_steps(best_steps: Any, runs: Mapping[str, Run]) -> None:
    """For each run: the optimizer step at which its validation loss was lowest."""
    values = _per_run(best_steps, "best_steps", runs, "step",
                      "a dict: for each run, the step of its lowest validation loss.")
    for name, run in runs.items():
        got = values[name]
        index = min(range(len(run.val_losses)), key=run.val_losses.__getitem__)
        want = index * run.eval_freq
        if got == want:
            continue
        hint = ""
        if got == index:
            hint = (f" That is the index of the evaluation; evaluations happen every eval_freq "
                    f"({run.eval_freq}) steps, starting at step 0.")
        elif got == (index + 1) * run.eval_freq:
            hint = " Off by one evaluation: the first evaluation is at step 0."
        elif got == max(range(len(run.val_losses)), key=run.val_losses.__getitem__) * run.eval_freq:
            hint = " That is the highest validation loss; look for the lowest."
        _fail(f"best_steps[{name!r}] is {got:g}; run {name!r} had its lowest validation loss "
              f"({run.val_losses[index]:.3f}) at step {want}.{hint}")
    _ok("best steps read correctly from the validation-loss curves.")


# --- A03: padding and position -------------------------------------------------------------


def check_last_real_positions(last_real_positions: Any) -> None:
    """``last_real_positions(input_ids, pad_token_id)``: each row's last non-pad position."""
    pad = 50256
    cases = [
        (torch.tensor([[5, 6, 7, pad, pad]]), pad, [2]),
        (torch.tensor([[5, 6, 7, 8, 9]]), pad, [4]),
        (torch.tensor([[11, pad, pad, pad], [1, 2, 3, pad], [4, 4, 4, 4]]), pad, [0, 2, 3]),
        (torch.tensor([[3, 9, 0, 0, 0], [7, 0, 0, 0, 0]]), 0, [1, 0]),
    ]
    for ids, pad_id, want in cases:
        got = _call(last_real_positions, "last_real_positions", ids.clone(), pad_id)
        try:
            got_list = [int(v) for v in torch.as_tensor(got).reshape(-1).tolist()]
        except (TypeError, ValueError, RuntimeError):
            _fail(f"last_real_positions should return one position per row (a tensor); got {_short(got)}.")
        if len(got_list) != ids.shape[0]:
            _fail(f"for input ids of shape {tuple(ids.shape)} you returned {len(got_list)} value(s); "
                  f"return one position per row ({ids.shape[0]}).")
        for row, g, w in zip(ids.tolist(), got_list, want):
            if g == w:
                continue
            hint = ""
            if pad_id != pad:
                hint = f" Use the pad_token_id argument ({pad_id} here), not a fixed 50256."
            elif g == len(row) - 1:
                hint = " That is the last position, which is a pad token whenever the message is shorter."
            elif g == w + 1:
                hint = " That is the first pad position (the length); subtract one."
            _fail(f"for the row {row} (pad id {pad_id}) you returned {g}; its last real token is at "
                  f"position {w}.{hint}")
    _ok("last_real_positions finds the last real token, with and without padding.")


def _fraction_hint(got: float, want: float, complement: str) -> str:
    """What a wrong fraction most likely is: its complement (``complement`` says so) or a percentage."""
    if _close(got, 1 - want, 1e-9):
        return " " + complement
    if _close(got, 100 * want, 1e-9):
        return " Give a fraction between 0 and 1, not a percentage."
    return ""


def check_pad_share(pad_share: Any, train_dataset: Any) -> None:
    """Share of training messages whose last position (book padding) holds a pad token."""
    _require(pad_share, "pad_share", "the fraction of training messages that end in a pad token.")
    got = _number(pad_share, "pad_share")
    rows = [list(ids.tolist()) for ids, _ in train_dataset]
    pad_id = getattr(train_dataset, "pad_token_id", 50256)
    want = sum(r[-1] == pad_id for r in rows) / len(rows)
    if _close(got, want, 1e-9):
        _ok(f"{want:.1%} of the training messages put a pad token at the position the book reads.")
        return
    hint = _fraction_hint(got, want, "That is the share that ends with a real token.")
    _fail(f"pad_share is {got:.4f}; {want:.4f} of the {len(rows)} training messages end in a pad "
          f"token (id {pad_id}) at position {train_dataset.max_length - 1}.{hint}")


def check_batch_padding(loaders: Any, name: str = "batch_loaders") -> None:
    """Loaders whose batches are padded only to their own longest message."""
    _require(loaders, name, "make the datasets with padding='batch' and build loaders from them.")
    loaders = _check_loaders(loaders, name)
    longest, widths, padded_tokens, book_tokens = 0, set(), 0, 0
    for split, loader in zip(SPLITS, loaders):
        ds = loader.dataset
        if getattr(ds, "padding", None) != "batch":
            _fail(f"your {split} set pads every message to {getattr(ds, 'max_length', '?')} tokens; "
                  "build it with padding='batch' so that each batch is padded to its own longest message.")
        longest = max(longest, ds.max_length)
        for inputs, _ in loader:
            real = [int(i) + 1 for i in last_real_index(inputs, ds.pad_token_id)]
            if inputs.shape[1] != max(real):
                _fail(f"a {split} batch is {inputs.shape[1]} tokens wide but its longest message has "
                      f"{max(real)}; pad each batch to its longest message (create_data_loaders does "
                      "that for datasets made with padding='batch').")
            widths.add(inputs.shape[1])
            padded_tokens += inputs.numel()
            book_tokens += inputs.shape[0] * ds.max_length
    if len(widths) < 2:
        _fail(f"every batch is {widths.pop()} tokens wide; with per-batch padding, widths should vary.")
    _ok(f"batches are {min(widths)} to {max(widths)} tokens wide; one pass over the three loaders "
        f"processes {padded_tokens:,} token positions instead of {book_tokens:,} "
        f"({padded_tokens / book_tokens:.0%}).")


def check_position_runs(baseline: Run, run_last_real: Any, run_batch: Any) -> None:
    """Reading the last real token beats the book's last position; per-batch padding gives the same."""
    a = _require_run(run_last_real, "run_last_real")
    b = _require_run(run_batch, "run_batch")
    if a.token != "last_real":
        _fail(f"run_last_real read the {a.token!r} token; pass token='last_real' to run_experiment.")
    if a.padding != "max_length" or a.max_length != baseline.max_length:
        _fail("run_last_real should use the baseline's loaders (padded the book's way); only the "
              "token read changes.")
    _same_setup(a, baseline, "run_last_real", allowed=("token",))
    if b.token != "last_real":
        _fail(f"run_batch read the {b.token!r} token; read 'last_real' there too, since with per-batch "
              "padding the last position is still a pad token for all but the longest message.")
    if b.padding != "batch":
        _fail("run_batch was trained on loaders padded the book's way; train it on `batch_loaders`.")
    _same_setup(b, baseline, "run_batch", allowed=("token", "max_length"))
    judged = _direction_checked(a)
    if judged and not a.loss["train"] < baseline.loss["train"]:
        _fail(f"reading the last real token should fit better than reading position -1 (mostly a pad "
              f"token): run_last_real's training loss is {a.loss['train']:.3f}, not below the "
              f"baseline's {baseline.loss['train']:.3f}.")
    for split in SPLITS:
        if abs(a.loss[split] - b.loss[split]) > 1e-3 + 1e-3 * abs(a.loss[split]):
            _fail(f"run_batch and run_last_real should agree (the pads come after the token read and the "
                  f"causal mask hides them), but their {split} losses are {b.loss[split]:.4f} and "
                  f"{a.loss[split]:.4f}. Were both trained with the same seed, loaders of the same "
                  "messages in the same order, and token='last_real'?")
    _ok(f"last real token: training loss {baseline.loss['train']:.3f} -> {a.loss['train']:.3f}"
        f"{'' if judged else _NOT_JUDGED}; per-batch padding gives the same results "
        f"({a.seconds:.1f} s vs {b.seconds:.1f} s).")


# --- A04: class imbalance and its metrics --------------------------------------------------


def _labels_of(source: Any) -> list[int]:
    """Class ids from a loader, a dataset, or a DataFrame with a mapped 'Label' column."""
    if isinstance(source, DataLoader):
        source = source.dataset
    if hasattr(source, "labels"):
        return [int(v) for v in source.labels]
    if hasattr(source, "columns") and "Label" in source.columns:
        from gptlib.data import map_labels

        return [int(v) for v in map_labels(source)["Label"]]
    raise TypeError(f"cannot read labels from {type(source).__name__}")


def check_spam_share(spam_share: Any, train_source: Any) -> None:
    """Fraction of spam (label 1) among the training messages."""
    _require(spam_share, "spam_share", "the fraction of training messages labelled spam (1).")
    got = _number(spam_share, "spam_share")
    labels = _labels_of(train_source)
    want = sum(labels) / len(labels)
    if _close(got, want, 1e-9):
        _ok(f"{want:.1%} of the {len(labels)} training messages are spam.")
        return
    hint = " Give a fraction, not a percentage." if _close(got, 100 * want, 1e-9) else ""
    if _close(got, 1 - want, 1e-9):
        hint = " That is the share of 'not spam'."
    _fail(f"spam_share is {got:.4f}; {sum(labels)} of the {len(labels)} training messages are spam "
          f"({want:.4f}).{hint}")


def check_majority_accuracy(majority_accuracy: Any, test_source: Any) -> None:
    """Accuracy on the test set of a 'classifier' that always answers 'not spam'."""
    _require(majority_accuracy, "majority_accuracy",
             "the test accuracy of always predicting 'not spam' (class 0).")
    got = _number(majority_accuracy, "majority_accuracy")
    labels = _labels_of(test_source)
    want = labels.count(0) / len(labels)
    if _close(got, want, 1e-9):
        _ok(f"answering 'not spam' to everything scores {want:.2%} on the test set.")
        return
    hint = _fraction_hint(got, want, "That is the share of spam; the majority class is 'not spam' (0).")
    _fail(f"majority_accuracy is {got:.4f}; always answering 'not spam' gets {labels.count(0)} of "
          f"the {len(labels)} test messages right ({want:.4f}).{hint}")


def check_unbalanced_run(run_unbalanced: Any, train_df: Any, test_ds: Any, max_length: int) -> None:
    """Trained on ``train_df`` as it is (not balanced), evaluated on the given test set."""
    run = _require_run(run_unbalanced, "run_unbalanced")
    train_ds, test_loader = run.loaders[0].dataset, run.loaders[2]
    labels = _labels_of(train_df)
    if len(train_ds) != len(labels):
        _fail(f"run_unbalanced was trained on {len(train_ds)} messages; train_df has {len(labels)}. "
              "Make the training dataset from train_df itself, without balancing it.")
    share, want = sum(train_ds.labels) / len(train_ds), sum(labels) / len(labels)
    if not _close(share, want, 1e-9):
        _fail(f"{share:.1%} of run_unbalanced's training messages are spam, but {want:.1%} of "
              "train_df's are; train on train_df as it is.")
    if test_loader.dataset is not test_ds:
        _fail("run_unbalanced was not evaluated on the given test_ds; pass val_ds and test_ds to "
              "create_data_loaders, so that both models are judged on the same messages.")
    if run.max_length != max_length:
        _fail(f"run_unbalanced's messages are padded to {run.max_length} tokens; use MAX_LENGTH "
              f"({max_length}), as for the validation and test sets.")
    _ok(f"trained on {len(train_ds)} messages as they come ({share:.1%} spam).")


def _prf(preds: Sequence[int], labels: Sequence[int], positive: int = 1) -> tuple[float, float, float]:
    tp = sum(p == positive and y == positive for p, y in zip(preds, labels))
    predicted = sum(p == positive for p in preds)
    actual = sum(y == positive for y in labels)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def check_precision_recall_f1(precision_recall_f1: Any) -> None:
    """``precision_recall_f1(preds, labels, positive=1)`` -> (precision, recall, f1)."""
    cases = [
        ([1, 1, 0, 0], [1, 0, 1, 0], 1),
        ([1, 1, 1, 0, 0], [1, 0, 0, 0, 0], 1),
        ([1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], 1),
        ([0, 0, 0, 0], [1, 0, 0, 0], 1),  # nothing predicted positive
        ([0, 1, 0, 1], [0, 1, 1, 1], 0),  # the other class as "positive"
    ]
    names = ("precision", "recall", "f1")
    for preds, labels, positive in cases:
        try:
            got = _call(precision_recall_f1, "precision_recall_f1", list(preds), list(labels), positive)
        except AssertionError as err:
            if isinstance(err.__cause__, ZeroDivisionError):
                _fail(f"precision_recall_f1({preds}, {labels}, positive={positive}) divides by zero: "
                      "when no message is predicted (or is) positive, use 0.0 for that ratio, as "
                      "gptlib.train.classification_metrics does.")
            raise
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            _fail(f"precision_recall_f1 should return three numbers (precision, recall, f1); "
                  f"got {_short(got)}.")
        values = tuple(_number(v, n) for v, n in zip(got, names))
        want = _prf(preds, labels, positive)
        if all(_close(g, w, 1e-9) for g, w in zip(values, want)):
            continue
        call = f"precision_recall_f1({preds}, {labels}, positive={positive})"
        hint = ""
        if _close(values[0], want[1], 1e-9) and _close(values[1], want[0], 1e-9) and want[0] != want[1]:
            hint = (" Precision and recall are swapped: precision = TP / predicted positive, "
                    "recall = TP / actually positive.")
        elif _close(values[2], (want[0] + want[1]) / 2, 1e-9) and want[2] != (want[0] + want[1]) / 2:
            hint = " F1 is the harmonic mean 2PR/(P+R), not the average."
        elif positive != 1:
            hint = " Use the `positive` argument rather than assuming class 1."
        _fail(f"{call} returned {tuple(round(v, 4) for v in values)}; expected "
              f"{tuple(round(v, 4) for v in want)} for (precision, recall, f1).{hint}")
    _ok("precision_recall_f1 is right, including when nothing is predicted positive.")


def check_spam_metrics(metrics: Any, run: Any, loader: DataLoader, name: str = "metrics") -> None:
    """A dict with accuracy, precision, recall and f1 (spam = 1) of a run's model on ``loader``."""
    _require(metrics, name, "a dict with 'accuracy', 'precision', 'recall' and 'f1' on the test set.")
    if not isinstance(metrics, Mapping):
        _fail(f"`{name}` should be a dict; got {type(metrics).__name__}.")
    _require(run, "the run", "train the model first.")
    model, token = (run.model, run.token) if isinstance(run, Run) else (run, "last")
    ref = classification_metrics(loader, model, model_device(model), token=token)
    for key in ("accuracy", "precision", "recall", "f1"):
        if key not in metrics:
            _fail(f"`{name}` has no {key!r}; it needs 'accuracy', 'precision', 'recall' and 'f1'.")
        got = _number(metrics[key], f"{name}[{key!r}]")
        if not _close(got, ref[key], 1e-9):
            hint = " Give fractions, not percentages." if _close(got, 100 * ref[key], 1e-9) else (
                " Compute it on this model's predictions for the whole test loader.")
            _fail(f"{name}[{key!r}] is {got:.4f}; the model's {key} on the test set is "
                  f"{ref[key]:.4f}.{hint}")
    _ok(f"{name}: accuracy {ref['accuracy']:.2%}, spam precision {ref['precision']:.2%}, "
        f"recall {ref['recall']:.2%}, F1 {ref['f1']:.3f} (confusion {ref['confusion_matrix']}).")


# --- A05: your own data, more than two classes ---------------------------------------------


def check_label_map(label_map: Any, categories: Sequence[str]) -> None:
    """Every category gets one id, and the ids are 0, 1, ..., K-1."""
    _require(label_map, "label_map", "a dict from each category name to a class id 0, 1, 2, ...")
    if not isinstance(label_map, Mapping):
        _fail(f"`label_map` should be a dict; got {type(label_map).__name__}.")
    wanted = sorted(set(categories))
    missing = [c for c in wanted if c not in label_map]
    extra = [k for k in label_map if k not in wanted]
    if missing or extra:
        _fail(f"label_map should have exactly the categories {wanted}; missing {missing}, extra {extra}.")
    ids = sorted(label_map.values())
    if ids != list(range(len(wanted))):
        _fail(f"label_map's ids are {ids}; use 0 .. {len(wanted) - 1}, each once: cross-entropy and "
              f"a head with {len(wanted)} outputs expect exactly those.")
    _ok(f"{len(wanted)} classes: {dict(sorted(label_map.items(), key=lambda kv: kv[1]))}.")


def check_support_data(frame: Any, loaders: Any, label_map: Mapping[str, int]) -> None:
    """The renamed table and the three loaders: every message once, with its mapped label."""
    _require(frame, "frame", "the CSV read into a DataFrame with columns 'Text' and 'Label'.")
    missing = [c for c in ("Text", "Label") if c not in getattr(frame, "columns", [])]
    if missing:
        _fail(f"`frame` lacks the column(s) {missing} that SpamDataset needs (it has "
              f"{list(getattr(frame, 'columns', []))}); rename the CSV's columns.")
    _require(loaders, "support_loaders", "build SpamDatasets with label_map=... and create_data_loaders.")
    loaders = _check_loaders(loaders, "support_loaders")
    _require(label_map, "label_map", "finish task 1 first.")
    want = {str(t): label_map.get(str(c).strip(), c) for t, c in zip(frame["Text"], frame["Label"])}
    seen = 0
    for split, loader in zip(SPLITS, loaders):
        ds = loader.dataset
        for text, label in zip(ds.data["Text"], ds.labels):
            if str(text) not in want:
                _fail(f"the {split} set holds a message that is not in `frame`: {str(text)[:50]!r}.")
            if label != want[str(text)]:
                _fail(f"in the {split} set, {str(text)[:50]!r} has label {label}; label_map gives "
                      f"{want[str(text)]}. Pass label_map=label_map to every SpamDataset.")
        seen += len(ds)
    if seen != len(frame):
        _fail(f"the three splits hold {seen} messages but `frame` has {len(frame)}; split all of it once.")
    classes = sorted(set(loaders[0].dataset.labels))
    if classes != list(range(len(label_map))):
        _fail(f"the training set has classes {classes} only; it needs all of {list(range(len(label_map)))}.")
    _ok(f"{seen} messages in {' / '.join(str(len(x.dataset)) for x in loaders)} "
        f"(train/validation/test), labels mapped with label_map.")


def check_support_head(model: Any, base_model: nn.Module, label_map: Mapping[str, int]) -> None:
    """A classifier with one output per category."""
    _require(model, "support_model", "add a classification head with one output per category.")
    _require(label_map, "label_map", "finish task 1 first.")
    _check_head(model, base_model, len(label_map), "support_model")
    _ok(f"the head maps {_emb_dim(model)} to {len(label_map)} outputs "
        f"({count_parameters(model.out_head):,} parameters).")


def _as_matrix(value: Any, name: str) -> list[list[int]]:
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    try:
        rows = torch.as_tensor(value).tolist()
    except (TypeError, ValueError, RuntimeError):
        _fail(f"`{name}` should be a square table of counts (list of lists or tensor); got {_short(value)}.")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        _fail(f"`{name}` should be a square table of counts; got {_short(value)}.")
    return [[int(round(v)) for v in r] for r in rows]


def check_confusion(confusion: Any, run: Any, label_map: Any) -> None:
    """The test set's confusion matrix: rows the true class, columns the predicted one."""
    _require(confusion, "confusion", "a K x K table of counts: rows true class, columns predicted class.")
    got = _as_matrix(confusion, "confusion")
    _require(label_map, "label_map", "finish task 1 first.")
    run = _require_run(run, "support_run")
    k = len(label_map)
    preds, labels = collect_predictions(run.loaders[2], run.model, token=run.token)
    want = [[0] * k for _ in range(k)]
    for y, p in zip(labels, preds):
        want[y][p] += 1
    if len(got) != k or any(len(r) != k for r in got):
        _fail(f"`confusion` has shape {len(got)} x {len(got[0]) if got else 0}; it should be {k} x {k} "
              "(one row and one column per class).")
    if got == want:
        _ok(f"confusion matrix of the {len(labels)} test messages: {want}.")
        return
    transposed = [list(r) for r in zip(*want)]
    hint = " Rows are the true class, columns the predicted one; yours is transposed." \
        if got == transposed and got != want else ""
    if sum(map(sum, got)) != len(labels):
        hint += f" Your counts add up to {sum(map(sum, got))}; the test set has {len(labels)} messages."
    _fail(f"`confusion` is {got}; counting the model's test predictions gives {want}.{hint}")


def check_classify_ticket(classify_ticket: Any, run: Any, label_map: Any) -> None:
    """``classify_ticket(text)`` returns the category name the trained model predicts."""
    texts = ["I was charged twice for my subscription this month",
             "The app crashes every time I open the settings page",
             "Do you have an office in Lisbon?"]
    answers = [_call(classify_ticket, "classify_ticket", text) for text in texts]
    _require(label_map, "label_map", "finish task 1 first.")
    run = _require_run(run, "support_run")
    names = {v: k for k, v in label_map.items()}
    tokenizer = _tokenizer()
    for text, got in zip(texts, answers):
        if not isinstance(got, str) or got not in label_map:
            extra = " Return the category's name, not its id (invert label_map)." \
                if isinstance(got, int) or (isinstance(got, torch.Tensor) and got.numel() == 1) else ""
            _fail(f"classify_ticket({text!r}) returned {_short(got)}; it should return one of "
                  f"{sorted(label_map)}.{extra}")
        probs = predict_proba(text, run.model, tokenizer, model_device(run.model),
                              max_length=run.max_length if run.padding == "max_length" else None,
                              token=run.token)
        want = names[max(range(len(probs)), key=probs.__getitem__)]
        if got != want:
            _fail(f"classify_ticket({text!r}) returned {got!r}, but the trained model (support_run.model, "
                  f"padded to {run.max_length} tokens, reading the {run.token!r} token) predicts {want!r}.")
    _ok("classify_ticket returns the trained model's category names.")


def _tokenizer():
    from gptlib.tokenizer import get_tokenizer

    return get_tokenizer()


# --- student versions ----------------------------------------------------------------------


def _marker(line: str) -> str | None:
    """BEGIN SOLUTION / END SOLUTION when ``line`` is such a marker (``### BEGIN SOLUTION``)."""
    text = line.strip().lstrip("#").strip()
    return text if text in (BEGIN_SOLUTION, END_SOLUTION) else None


def solution_regions(source: str) -> list[tuple[int, int]]:
    """(begin, end) line indices of each solution region of a cell, markers included.

    Raises ValueError for a BEGIN without END, an END without BEGIN, or nested regions.
    """
    regions, begin = [], None
    for i, line in enumerate(source.splitlines()):
        mark = _marker(line)
        if mark == BEGIN_SOLUTION:
            if begin is not None:
                raise ValueError(f"line {i + 1}: BEGIN SOLUTION inside another solution region")
            begin = i
        elif mark == END_SOLUTION:
            if begin is None:
                raise ValueError(f"line {i + 1}: END SOLUTION without BEGIN SOLUTION")
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise ValueError(f"line {begin + 1}: BEGIN SOLUTION without END SOLUTION")
    return regions


def strip_solutions(source: str, cell_type: str = "code") -> str:
    """The cell's text with every solution region replaced by nbgrader's placeholder.

    Code: ``# YOUR CODE HERE`` and ``raise NotImplementedError()``, indented like the
    BEGIN marker; markdown: ``YOUR ANSWER HERE``. Text outside the markers is kept.
    """
    lines = source.splitlines()
    out: list[str] = []
    pos = 0
    for begin, end in solution_regions(source):
        out += lines[pos:begin]
        indent = re.match(r"\s*", lines[begin]).group(0)
        if cell_type == "code":
            out += [indent + line for line in CODE_PLACEHOLDER]
        else:
            out.append(ANSWER_PLACEHOLDER)
        pos = end + 1
    out += lines[pos:]
    return "\n".join(out)


def student_notebook(nb: Any, where: str = "notebook") -> Any:
    """A student copy of a notebook node: solutions replaced, outputs and counts cleared.

    nbgrader's rule is followed for cells marked as solution cells but holding no markers:
    the whole cell becomes the placeholder.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("jupytext", None)  # the student copy is a plain notebook, not a pair
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        grading = cell.metadata.get("nbgrader", {})
        try:
            regions = solution_regions(cell.source)
        except ValueError as err:
            raise ValueError(f"{where}, cell {index}: {err}") from None
        if regions:
            cell.source = strip_solutions(cell.source, cell.cell_type)
        elif grading.get("solution") and cell.cell_type in ("code", "markdown"):
            cell.source = "\n".join(CODE_PLACEHOLDER) if cell.cell_type == "code" else ANSWER_PLACEHOLDER
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def default_source_dir() -> Path:
    """``notebooks/assignments`` of the checkout gptlib runs from, or of the current folder."""
    candidates = [Path(__file__).resolve().parents[1] / "notebooks" / "assignments",
                  Path.cwd() / "notebooks" / "assignments", Path.cwd()]
    for folder in candidates:
        if any(folder.glob("A[0-9][0-9]_*.ipynb")):
            return folder
    raise FileNotFoundError(
        "Cannot find the assignment notebooks (notebooks/assignments/A01_*.ipynb ...); run this from "
        "the repository's root or pass the folder with --source.")


def assignment_notebooks(src_dir: str | Path) -> list[Path]:
    """The assignment notebooks (``A01_*.ipynb`` ...) of a folder, in order."""
    return sorted(Path(src_dir).glob("A[0-9][0-9]_*.ipynb"))


def build_student_versions(src_dir: str | Path | None = None, out_dir: str | Path = "student") -> list[Path]:
    """Write the student version of each assignment notebook of ``src_dir`` into ``out_dir``.

    Solution regions become placeholders, outputs and execution counts are cleared, check
    cells and nbgrader metadata are kept; the files of ``src_dir/data`` (which the notebooks
    read) are copied to ``out_dir/data``. Every file is written atomically. Returns the paths
    written. ``out_dir`` may not be ``src_dir`` or lie inside it.
    """
    import nbformat

    src = Path(src_dir) if src_dir is not None else default_source_dir()
    out = Path(out_dir)
    notebooks = assignment_notebooks(src)
    if not notebooks:
        raise FileNotFoundError(f"No assignment notebooks (A01_*.ipynb ...) in {src}.")
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise ValueError(f"The output folder {out} is (inside) the source folder {src}; choose "
                         "another one, so that the solutions are never overwritten.")
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        student = student_notebook(nb, where=path.name)
        nbformat.validate(student)
        text = nbformat.writes(student)
        if not text.endswith("\n"):
            text += "\n"
        written.append(atomic_write_bytes(out / path.name, text.encode()))
    data = src / "data"
    if data.is_dir():
        for file in sorted(p for p in data.rglob("*") if p.is_file()):
            written.append(atomic_write_bytes(out / "data" / file.relative_to(data), file.read_bytes()))
    return written


def grade_notebook(path: str | Path, *, profile: str | None = "smoke", timeout: int = 600,
                   workdir: str | Path | None = None) -> list[dict[str, Any]]:
    """Run a notebook and score its check cells: a check that raises nothing earns its points.

    Returns one dict per check cell (nbgrader ``grade: true`` code cells, in order) with
    ``grade_id``, ``points``, ``score`` and ``feedback`` (the check's error, empty when it
    passed). The notebook runs in ``workdir`` (default: its own folder, where ``data/`` is)
    under ``profile`` (default "smoke", with its own small data file even where
    ``$GPTLIB_DATA_DIR`` is set: the checks hold there too, and a whole class is graded in
    minutes; None keeps ``$GPTLIB_PROFILE``). It executes the student's code:
    grade submissions in a sandbox or container.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    saved = {key: os.environ.get(key) for key in ("GPTLIB_PROFILE", "GPTLIB_DATA_DIR")}
    if profile is not None:
        os.environ["GPTLIB_PROFILE"] = profile  # the kernel inherits this process's environment
    if profile == "smoke":
        os.environ.pop("GPTLIB_DATA_DIR", None)  # the smoke profile's own data file, as designed
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(workdir or path.parent)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    results = []
    for cell in nb.cells:
        grading = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not grading.get("grade") or grading.get("solution"):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        points = float(grading.get("points", 0))
        results.append({
            "grade_id": grading.get("grade_id", "?"), "points": points,
            "score": 0.0 if errors else points,
            "feedback": f"{errors[0].ename}: {errors[0].evalue}" if errors else "",
        })
    return results


def solution_lines(source: str) -> list[str]:
    """The lines strictly inside the solution regions of a cell (markers excluded)."""
    lines = source.splitlines()
    return [lines[i] for begin, end in solution_regions(source) for i in range(begin + 1, end)]


__all__ = [
    "Run", "build_student_versions", "check_all_layers_trainable", "check_batch_padding",
    "check_best_steps", "check_classify_ticket", "check_confusion", "check_decay_shrink",
    "check_exercise_61", "check_exercise_62", "check_exercise_63", "check_gaps",
    "check_label_map", "check_last_real_positions", "check_majority_accuracy",
    "check_pad_share", "check_padded_to_context", "check_position_runs",
    "check_precision_recall_f1", "check_regularisation_runs", "check_spam_metrics",
    "check_spam_share", "check_support_data", "check_unbalanced_run", "check_support_head", "check_with_dropout",
    "collect_predictions", "grade_notebook", "compare_runs", "default_source_dir", "evaluate_loader",
    "plot_runs", "run_experiment", "strip_solutions", "student_notebook",
]
