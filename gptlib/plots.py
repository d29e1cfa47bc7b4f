"""The book's loss and accuracy plots: epochs below, examples seen on a twin axis above."""

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
import torch  # noqa: E402

from gptlib.files import atomic_path  # noqa: E402

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
    ax1.plot(epochs_seen, train_values, label=f"Training {label}")
    ax1.plot(epochs_seen, val_values, linestyle="-.", label=f"Validation {label}")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(label.capitalize())
    ax1.legend()
    ax2 = ax1.twiny()
    ax2.plot(examples_seen, train_values, alpha=0)  # invisible: only aligns the top axis' ticks
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
    """Both of the chapter's plots from ``train_classifier_simple``'s results, with the book's axes."""
    epochs_tensor = torch.linspace(0, num_epochs, len(train_losses))
    examples_tensor = torch.linspace(0, examples_seen, len(train_losses))
    loss_fig = plot_values(epochs_tensor, examples_tensor, train_losses, val_losses, "loss", output_dir, show)
    epochs_tensor = torch.linspace(0, num_epochs, len(train_accs))
    examples_tensor = torch.linspace(0, examples_seen, len(train_accs))
    acc_fig = plot_values(epochs_tensor, examples_tensor, train_accs, val_accs, "accuracy", output_dir, show)
    return loss_fig, acc_fig
