"""The assignments' experiment runner, on the chapter's own run function.

:func:`run_experiment` turns an assignment profile plus a few settings into a
:class:`gptlib.settings.FinetuneConfig` and runs :func:`gptlib.finetune.run_finetune`, the
function behind ``python -m gptlib finetune``, the notebooks and the lab; so an assignment's
run is the chapter's run and every setting it takes works here too (``speed="fast"``,
``trainable="lora"``, ...). Then it measures accuracy and loss on the whole of each split.

Nothing here imports ipywidgets; matplotlib is imported only by :func:`plot_runs`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from gptlib.classifier import classifier_logits
from gptlib.model import count_parameters
from gptlib.notebook import Profile
from gptlib.settings import FinetuneConfig
from gptlib.tokenizer import END_OF_TEXT_ID

SPLITS = ("train", "validation", "test")


@dataclass
class Run:
    """One fine-tuning run made by :func:`run_experiment`.

    ``config`` is the :class:`FinetuneConfig` it ran with (as a dict); ``accuracy`` and
    ``loss`` hold the final numbers on the whole of each split (``"train"``,
    ``"validation"``, ``"test"``); the curves are the book's (losses every ``eval_freq``
    steps on ``eval_iter`` batches, accuracies after every epoch). ``model`` is the trained
    classifier, ``loaders`` the (train, validation, test) loaders of its data.
    """

    name: str
    profile: str
    config: dict[str, Any]
    train_losses: list[float]
    val_losses: list[float]
    train_accs: list[float]
    val_accs: list[float]
    examples_seen: int
    accuracy: dict[str, float]
    loss: dict[str, float]
    trainable_params: int
    total_params: int
    class_names: list[str]
    seconds: float
    adjust: str | None = None  # the function that changed the classifier before training
    model: nn.Module = field(default=None, repr=False)
    loaders: tuple[DataLoader, DataLoader, DataLoader] = field(default=(), repr=False)

    def __getattr__(self, name: str) -> Any:
        # the run's settings read as attributes: run.token, run.max_length, run.epochs, ...
        config = self.__dict__.get("config") or {}
        if name in config:
            return config[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    @property
    def max_length(self) -> int:
        """The padded length of the training messages (per-batch padding: the longest one)."""
        return int(self.loaders[0].dataset.max_length) if self.loaders else int(self.config.get("max_length") or 0)

    @property
    def train_size(self) -> int:
        return len(self.loaders[0].dataset) if self.loaders else 0

    def row(self) -> dict[str, Any]:
        """The run's final numbers and main settings, flat, for a table (accuracies in %)."""
        out: dict[str, Any] = {f"{s} acc %": 100 * self.accuracy[s] for s in SPLITS}
        out.update({f"{s} loss": self.loss[s] for s in SPLITS})
        out.update({"token": self.config["token"], "padding": self.config["padding"],
                    "max_length": self.max_length, "trainable": self.trainable_params,
                    "seconds": self.seconds})
        return out


def experiment_config(profile: Profile, **settings: Any) -> FinetuneConfig:
    """The FinetuneConfig of a run: the profile's model, data and training settings, then
    ``settings`` (any FinetuneConfig field). ValueError names a setting that does not exist
    or cannot work."""
    cfg = profile.run_config("runs", **settings)
    cfg.check()
    return cfg


def _frame_file(frame: pd.DataFrame, folder: Path, role: str) -> str:
    """A DataFrame with Text and Label columns written to a CSV named by its content."""
    missing = [c for c in ("Text", "Label") if c not in frame.columns]
    if missing:
        raise ValueError(f"The {role} table lacks the column(s) {missing}; it needs 'Text' and 'Label'.")
    text = frame[["Label", "Text"]].to_csv(index=False)
    path = folder / f"{role}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(path)


def own_data_settings(profile: Profile, csv: Any = None, train: Any = None, validation: Any = None,
                      test: Any = None) -> dict[str, str]:
    """Settings for your own data: one table ``csv`` (split 70/10/20), or three tables;
    each a DataFrame (with Text and Label columns) or a CSV file."""
    folder = Path(profile.work_dir) / "tables"

    def as_file(value: Any, role: str) -> str:
        return _frame_file(value, folder, role) if isinstance(value, pd.DataFrame) else str(value)

    if csv is not None:
        return {"csv": as_file(csv, "all")}
    given = [train, validation, test]
    if any(v is not None for v in given):
        if any(v is None for v in given):
            raise ValueError("Give all three of train, validation and test (or one table as csv).")
        return {key: as_file(v, role) for key, v, role in
                zip(("train_csv", "val_csv", "test_csv"), given, ("train", "validation", "test"))}
    return {}


def run_experiment(profile: Profile, *, name: str = "", adjust: Callable[[nn.Module], Any] | None = None,
                   csv: Any = None, train: Any = None, validation: Any = None, test: Any = None,
                   progress: bool | None = None, quiet: bool = False, **settings: Any) -> Run:
    """Fine-tune a classifier the chapter's way (``run_finetune``) and evaluate every split.

    ``profile`` is the setup cell's; ``settings`` are FinetuneConfig fields that change the
    experiment (``max_length=1024``, ``trainable="all"``, ``token="first"``,
    ``padding="batch"``, ``drop_rate=0.3``, ``train_limit=200``, ...). Your own data: ``csv``
    (one table, split 70/10/20) or ``train``/``validation``/``test``, as DataFrames with Text
    and Label columns or CSV files. ``adjust(model)`` changes the classifier before it trains
    (e.g. freezes a part). Progress bars are off under nbgrader.

    Shown in notebooks/assignments/A01_book_exercises.
    """
    from gptlib.finetune import run_finetune

    data = own_data_settings(profile, csv, train, validation, test)
    overlap = sorted(set(data) & set(settings))
    if overlap:
        raise ValueError(f"Give the data either as tables or as the setting(s) {overlap}, not both.")
    cfg = experiment_config(profile, **settings, **data)
    if progress is None:
        progress = not quiet and not os.environ.get("NBGRADER_EXECUTION")
    start = time.perf_counter()
    result = run_finetune(cfg, progress=progress, verbose=False, save=False, prepare_model=adjust,
                          evaluate_splits=evaluate_loader)
    model, loaders = result.model, result.loaders
    accuracy = {split: result.splits[split][0] for split in SPLITS}
    loss = {split: result.splits[split][1] for split in SPLITS}
    run = Run(
        name=name, profile=profile.name, config=dict(result.config), train_losses=result.train_losses,
        val_losses=result.val_losses, train_accs=result.train_accs, val_accs=result.val_accs,
        examples_seen=result.examples_seen, accuracy=accuracy, loss=loss,
        trainable_params=count_parameters(model, trainable_only=True), total_params=count_parameters(model),
        class_names=list(result.class_names), seconds=time.perf_counter() - start,
        adjust=None if adjust is None else getattr(adjust, "__name__", repr(adjust)),
        model=model.eval(), loaders=tuple(loaders),
    )
    if not quiet:
        label = f"{name}: " if name else ""
        print(f"{label}accuracy train {accuracy['train']:.2%}, validation {accuracy['validation']:.2%}, "
              f"test {accuracy['test']:.2%} | loss train {loss['train']:.3f}, validation "
              f"{loss['validation']:.3f} | {run.seconds:.1f} s")
    return run


def evaluate_loader(loader: DataLoader, model: nn.Module, device: torch.device | str,
                    token: str = "last", pad_token_id: int = END_OF_TEXT_ID) -> tuple[float, float]:
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
                        token: str = "last", pad_token_id: int = END_OF_TEXT_ID) -> tuple[list[int], list[int]]:
    """(predicted class ids, true class ids) for every message of a loader, in loader order."""
    device = device if device is not None else next(model.parameters()).device
    model.eval()
    preds: list[int] = []
    labels: list[int] = []
    with torch.no_grad():
        for inputs, targets in loader:
            logits = classifier_logits(model, inputs.to(device), token, pad_token_id)
            preds += logits.argmax(dim=-1).tolist()
            labels += targets.tolist()
    return preds, labels


def compare_runs(runs: Mapping[str, Run], reference: Mapping[str, float] | None = None,
                 reference_label: str = "book test acc %") -> pd.DataFrame:
    """A table of the runs' final numbers, one row per run (numeric columns, so ``.round``
    works). ``reference`` adds a column, e.g. the book's test accuracy for each run's name."""
    shown = {name: run for name, run in runs.items() if run is not None}
    table = pd.DataFrame([run.row() for run in shown.values()], index=list(shown))
    if reference is not None:
        table[reference_label] = [reference.get(name, float("nan")) for name in table.index]
    return table


def plot_runs(runs: Mapping[str, Run], what: str = "loss"):
    """Training and validation curves of several runs side by side (``what``: loss or accuracy).

    Losses are plotted against the optimizer step at which they were measured, accuracies
    against the epoch. Returns the matplotlib figure (closed, so a notebook shows it once).
    """
    from gptlib.plots import plt  # gptlib.plots picks an off-screen backend outside Jupyter

    shown = {name: run for name, run in runs.items() if run is not None}
    if not shown:
        raise ValueError("No runs to plot.")
    if what not in ("loss", "accuracy"):
        raise ValueError(f"what must be 'loss' or 'accuracy'; got {what!r}.")
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3), sharey=True, squeeze=False)
    for ax, (name, run) in zip(axes[0], shown.items()):
        if what == "loss":
            steps = [i * run.config["eval_freq"] for i in range(len(run.train_losses))]
            ax.plot(steps, run.train_losses, label="training")
            ax.plot(steps, run.val_losses, linestyle="-.", label="validation")
            ax.set_xlabel("optimizer step")
        else:
            epochs = list(range(1, len(run.train_accs) + 1))
            ax.plot(epochs, run.train_accs, marker="o", label="training")
            ax.plot(epochs, run.val_accs, marker="o", linestyle="-.", label="validation")
            ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=10)
    axes[0][0].set_ylabel(what)
    axes[0][0].legend()
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value, not a second time by the inline backend
    return fig


__all__ = ["SPLITS", "Run", "collect_predictions", "compare_runs", "evaluate_loader",
           "experiment_config", "own_data_settings", "plot_runs", "run_experiment"]
