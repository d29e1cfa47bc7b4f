"""The book's loss and accuracy plots (epochs below, examples seen on a twin axis above), and a
diagram of which parts of a classifier train."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in ("agg",) and not matplotlib.is_interactive():
    try:  # in a terminal or CI there is no display: draw off-screen
        import IPython

        if IPython.get_ipython() is None:
            matplotlib.use("Agg")
    except ImportError:
        matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from gptlib.support.files import atomic_path  # noqa: E402

DEFAULT_FIGURES = Path("figures")


def plot_values(epochs_seen: Sequence[float] | torch.Tensor, examples_seen: Sequence[float] | torch.Tensor,
                train_values: Sequence[float], val_values: Sequence[float], label: str = "loss",
                output_dir: str | Path | None = DEFAULT_FIGURES, show: bool = True,
                formats: Sequence[str] = ("png", "pdf")) -> plt.Figure:
    """Plot training and validation values against epochs, with examples seen on top.

    As the book's ``plot_values``; the figure is also written to ``output_dir`` as
    ``{label}-plot.png`` and ``.pdf`` (``output_dir=None`` writes nothing).
    """
    if len(train_values) != len(val_values):
        raise ValueError(f"train_values ({len(train_values)}) and val_values ({len(val_values)}) differ in length.")
    fig, ax1 = plt.subplots(figsize=(5, 3))
    marker = "o" if len(train_values) == 1 else None  # one point would draw no line at all
    ax1.plot(epochs_seen, train_values, marker=marker, label=f"Training {label}")
    ax1.plot(epochs_seen, val_values, marker=marker, linestyle="-.", label=f"Validation {label}")
    if len(train_values) == 1:
        ax1.set_xlim(0, max(float(torch.as_tensor(epochs_seen).max()) * 1.1, 1.0))
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(label.capitalize())
    ax1.legend()
    ax2 = ax1.twiny()
    ax2.plot(examples_seen, train_values, alpha=0)  # invisible: only aligns the top axis' ticks
    if len(train_values) == 1:
        ax2.set_xlim(0, max(float(torch.as_tensor(examples_seen).max()) * 1.1, 1.0))
    ax2.set_xlabel("Examples seen")
    fig.tight_layout()
    if output_dir is not None:
        save_figure(fig, Path(output_dir) / f"{label}-plot", formats)
    if show:
        plt.show()
    else:
        plt.close(fig)
    return fig


def save_figure(fig: plt.Figure, stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for each format, each through a temporary file."""
    stem = Path(stem)
    written = []
    for fmt in formats:
        final = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150 if fmt == "png" else None)
        written.append(final)
    return written


def plot_training(train_losses: Sequence[float], val_losses: Sequence[float], train_accs: Sequence[float],
                  val_accs: Sequence[float], examples_seen: int, num_epochs: int,
                  output_dir: str | Path | None = DEFAULT_FIGURES, show: bool = True) -> tuple[plt.Figure, plt.Figure]:
    """Both of the chapter's plots from ``train_classifier_simple``'s results.

    The losses are spread evenly over the run, as in the book (they are measured every
    ``eval_freq`` steps, from step 0). Each accuracy is drawn where it was measured, at the end
    of its epoch (1, 2, ...): the book spreads them from epoch 0, which draws the accuracy after
    the first epoch as if it were the untrained model's."""
    epochs_tensor = torch.linspace(0, num_epochs, len(train_losses))
    examples_tensor = torch.linspace(0, examples_seen, len(train_losses))
    loss_fig = plot_values(epochs_tensor, examples_tensor, train_losses, val_losses, "loss", output_dir, show)
    n = len(train_accs)
    epochs_tensor = torch.arange(1, n + 1, dtype=torch.float32) * num_epochs / max(n, 1)
    examples_tensor = torch.arange(1, n + 1, dtype=torch.float32) * examples_seen / max(n, 1)
    acc_fig = plot_values(epochs_tensor, examples_tensor, train_accs, val_accs, "accuracy", output_dir, show)
    return loss_fig, acc_fig


TRAINABLE_COLOURS = {"trainable": "tab:orange", "partly trainable": "tab:olive", "frozen": "tab:blue"}


def plot_trainable_parts(table: pd.DataFrame, output_dir: str | Path | None = None, show: bool = True,
                         log: bool = True, title: str = "What trains and what stays frozen") -> plt.Figure:
    """The model drawn as a stack of its parts, embeddings at the bottom and the head on top.

    ``table`` is ``gptlib.classifier.parameter_table(model)``: one horizontal bar per part,
    as long as its parameter count (on a log scale by default: the new head has about 1,500
    weights, the token embedding 38 million) and coloured by whether it trains. Written to
    ``output_dir`` as ``trainable-parts.png`` (``None``, the default, writes nothing).
    """
    status = ["frozen" if t == 0 else "trainable" if f == 0 else "partly trainable"
              for t, f in zip(table["trainable"], table["frozen"], strict=True)]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(table) + 1.2))
    positions = range(len(table))
    ax.barh(positions, table["parameters"], color=[TRAINABLE_COLOURS[s] for s in status])
    for y, n in zip(positions, table["parameters"], strict=True):
        ax.text(n, y, f" {n:,}", va="center", fontsize=8)
    ax.set_yticks(list(positions), table["part"])
    if log:
        ax.set_xscale("log")
    ax.set_xlim(right=table["parameters"].max() * (30 if log else 1.3))  # room for the counts
    ax.set_xlabel("parameters" + (" (log scale)" if log else ""))
    trained, total = int(table["trainable"].sum()), int(table["parameters"].sum())
    ax.set_title(f"{title}\n{trained:,} of {total:,} parameters train ({trained / total:.1%})", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=TRAINABLE_COLOURS[s]) for s in TRAINABLE_COLOURS if s in status]
    ax.legend(handles, [s for s in TRAINABLE_COLOURS if s in status], loc="upper right", fontsize=8)
    fig.tight_layout()
    if output_dir is not None:
        save_figure(fig, Path(output_dir) / "trainable-parts", ("png",))
    if show:
        plt.show()
    else:
        plt.close(fig)
    return fig
