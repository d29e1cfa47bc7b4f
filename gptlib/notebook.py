"""Helpers for the chapter notebooks in ``notebooks/``.

* :func:`load_profile` gives every notebook the same settings: the book's run by default, or
  a tiny offline one when ``GPTLIB_PROFILE=smoke`` (what the tests use).
* :func:`show_source` shows the library's code in a notebook, so that cells never copy it.
* :func:`load_base_model`, :func:`spam_data_file` and :func:`attention_weights` are the few
  steps the notebooks share.
* the small interactive explorers around library functions are in :mod:`gptlib.lab.explorers`.

ipywidgets and IPython are imported only inside the functions that need them, so importing
this module costs no more than importing gptlib itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import textwrap
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from gptlib.data import SPAM_SHA256, shipped_spam_file
from gptlib.finetune import base_model, resolve_data_file
from gptlib.model import GPTModel
from gptlib.settings import FinetuneConfig
from gptlib.support.device import get_device
from gptlib.support.files import sha256_of
from gptlib.tokenizer import END_OF_TEXT_ID, get_tokenizer
from gptlib.train import encode_message

PROFILE_ENV = "GPTLIB_PROFILE"
PROFILES = ("book", "offline", "smoke")
SMOKE_DATA = "assets/sms_smoke.tsv"
TRAINABLE_CHOICES = ("head", "last_block", "last_2_blocks", "all")


@dataclass(frozen=True)
class Profile:
    """The settings a notebook runs with: one run's :class:`FinetuneConfig` (``config``) plus
    the few things only notebooks need. Defaults are the book's run (``load_profile("book")``).

    A run setting reads straight through: ``profile.epochs`` is ``profile.config.epochs``.
    """

    name: str = "book"
    config: FinetuneConfig = field(default_factory=FinetuneConfig)  # model, weights, data, training
    accuracy_batches: int = 10  # batches for the accuracy before fine-tuning (the book's 10)
    loss_batches: int = 5  # batches for the loss before fine-tuning (the book's 5)
    work_dir: Path = Path("runs/notebooks")  # split CSVs and the saved classifier
    figures_dir: Path = Path("figures")  # loss and accuracy plots

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "config":
            raise AttributeError(name)
        try:
            return getattr(self.config, name)
        except AttributeError:
            raise AttributeError(f"A profile has no setting {name!r}.") from None

    def replace(self, **changes: Any) -> Profile:
        """A copy with some settings changed, e.g. ``profile.replace(epochs=3)``: a run setting
        (any FinetuneConfig field) goes to the copy's ``config``, the rest to the profile."""
        own = {f.name for f in dataclasses.fields(self)}
        run = {k: v for k, v in changes.items() if k not in own}
        try:
            config = dataclasses.replace(self.config, **run)
        except TypeError:
            unknown = sorted(set(run) - {f.name for f in dataclasses.fields(FinetuneConfig)})
            raise ValueError(f"Unknown setting(s) {unknown}: a profile takes {sorted(own - {'config'})} and "
                             "any FinetuneConfig field.") from None
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if k in own}, config=config)

    def run_config(self, folder: str, **changes: Any) -> FinetuneConfig:
        """The FinetuneConfig of a run made from this profile, writing below ``work_dir/folder``
        (no figures), with ``changes`` (any FinetuneConfig field) on top."""
        values = {**dataclasses.asdict(self.config), "output": str(Path(self.work_dir) / folder), "figures": None}
        return FinetuneConfig.from_dict({**values, **changes})

    def summary(self) -> str:
        """The settings, one per line: the notebook's own, then the run's that differ from the book's."""
        book = FinetuneConfig()
        rows = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "config"]
        rows += [(f.name, getattr(self.config, f.name)) for f in dataclasses.fields(self.config)
                 if f.name in ("model_size", "weights", "data", "epochs", "lr", "batch_size", "seed", "device")
                 or getattr(self.config, f.name) != getattr(book, f.name)]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {_relative(value)}" for name, value in rows)

    def __str__(self) -> str:
        return self.summary()


def _relative(value: Any) -> Any:
    """A path inside the checkout as the reader's checkout has it: relative to its root."""
    if isinstance(value, (str, Path)) and Path(value).is_absolute():
        try:
            return Path(value).relative_to(project_root()).as_posix()
        except ValueError:
            return value
    return value


def project_root(start: str | Path | None = None) -> Path:
    """The checkout's root (the folder holding ``pyproject.toml`` and ``gptlib/``).

    Searched upwards from ``start`` (default: the current folder, which is ``notebooks/`` when
    Jupyter or nbval runs a notebook); falls back to the current folder outside a checkout.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "gptlib").is_dir():
            return folder
    return here


def smoke_data_file() -> Path:
    """The small made-up SMS file shipped with gptlib (200 lines, 26 spam) for fast offline runs."""
    return Path(str(resources.files("gptlib").joinpath(SMOKE_DATA)))


def load_profile(name: str | None = None, **overrides: Any) -> Profile:
    """Settings for the notebooks: ``"book"`` (the default) or ``"smoke"``.

    ``name=None`` reads ``$GPTLIB_PROFILE`` (unset means ``"book"``).

    * ``book``: pretrained gpt2-small, the real SMS Spam Collection (an earlier download, the
      local copy named by ``$GPTLIB_DATA_DIR``, or the copy shipped with gptlib), the book's
      5 epochs; files go below ``runs/notebooks``.
    * ``offline``: the same data and settings with gpt2-small-shaped random weights (no
      network at all); files below ``runs/notebooks-offline``.
    * ``smoke``: a tiny randomly initialised model, 1 epoch, and a 200-message made-up data
      file shipped in the package, unless ``$GPTLIB_DATA_DIR`` points at the real data. Runs
      in seconds without a network; writes below ``runs/`` only, never to ``figures/``.

    Keyword arguments override single settings, e.g. ``load_profile(epochs=2)``.
    """
    name = (name or os.environ.get(PROFILE_ENV) or "book").strip().lower()
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r} (from ${PROFILE_ENV}?); use one of {PROFILES}.")
    root = project_root()
    if name == "book":
        profile = Profile(work_dir=root / "runs" / "notebooks", figures_dir=root / "runs" / "notebooks" / "figures")
    elif name == "offline":
        work = root / "runs" / "notebooks-offline"
        profile = Profile(name="offline", config=FinetuneConfig(weights="random", data=str(shipped_spam_file())),
                          work_dir=work, figures_dir=work / "figures")
    else:
        work = root / "runs" / "notebooks-smoke"
        profile = Profile(
            name="smoke", config=FinetuneConfig(
                model_size="gpt2-tiny (test)", weights="random", epochs=1, eval_freq=2, eval_iter=2, device="cpu",
                data=None if os.environ.get("GPTLIB_DATA_DIR") else str(smoke_data_file())),
            accuracy_batches=2, loss_batches=2, work_dir=work, figures_dir=work / "figures",
        )
    return profile.replace(**overrides) if overrides else profile


def spam_data_file(profile: Profile) -> Path:
    """The raw SMS file a profile uses: its ``data`` (a plain file as it is; a zip or a
    folder checked and unpacked), else the book's download step (which takes a local copy from
    ``$GPTLIB_DATA_DIR`` instead of the network when set). Same rules as ``--data``."""
    if profile.data is None:  # an earlier download, GPTLIB_DATA_DIR, or the shipped copy
        return resolve_data_file(None)
    return resolve_data_file(str(profile.data), verbose=False)


def profile_device(profile: Profile) -> torch.device:
    """The device the profile asks for. The smoke profile's tiny model also gets one CPU
    thread: on a shared machine it runs faster on one thread than on several."""
    if profile.name == "smoke":
        torch.set_num_threads(1)
    return get_device(profile.device)


def is_book_data(path: str | Path) -> bool:
    """True when ``path`` is byte for byte the real SMS Spam Collection the book uses."""
    path = Path(path)
    return path.is_file() and sha256_of(path) == SPAM_SHA256


class NotebookStop(Exception):
    """Stops a notebook cell with one line and no traceback (IPython prints what
    ``_render_traceback_`` returns instead of a traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{self}\x1b[0m"]


def load_base_model(profile: Profile) -> GPTModel:
    """The profile's GPT-2, before any change: OpenAI's weights, or random ones (seeded), in eval
    mode. Where pretrained weights are neither cached nor downloadable, stops the cell with one
    line naming the two ways on.

    Shown in notebooks/01_two_kinds_of_finetuning.
    """
    from gptlib.support.download import DownloadError
    from gptlib.weights import weights_path

    try:
        return base_model(profile.model_size, profile.weights, seed=profile.seed)
    except DownloadError:
        raise NotebookStop(
            f"No pretrained GPT-2 weights here (none cached, and the download failed). Either restart "
            f"Jupyter with GPTLIB_PROFILE=offline (random gpt2-small-shaped weights, the real data), or put "
            f"OpenAI's model.safetensors at {weights_path(profile.model_size)}.") from None


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def source_of(obj: Any) -> str:
    """The source code of a function, class or module, headed by where it lives."""
    try:
        source = inspect.getsource(obj)
        file = Path(inspect.getsourcefile(obj) or "?")
        _, line = inspect.getsourcelines(obj)
    except (OSError, TypeError) as err:
        raise TypeError(f"Cannot show the source of {obj!r}: {err}") from None
    try:
        shown = file.resolve().relative_to(project_root(file.parent))
    except ValueError:
        shown = Path(file.name)
    return f"# {shown.as_posix()}, line {line}\n{textwrap.dedent(source)}"


def show_source(obj: Any) -> None:
    """Show the source of a gptlib function or class: highlighted in Jupyter, printed elsewhere."""
    source = source_of(obj).rstrip("\n")
    if not _in_notebook():
        print(source)
        return
    from IPython.display import display

    fence = "````" if "```" in source else "```"
    display({"text/markdown": f"{fence}python\n{source}\n{fence}", "text/plain": source}, raw=True)


# --- small computations the notebooks and widgets share ------------------------------------


def describe_message(text: str, tokenizer=None, max_length: int = 120,
                     pad_token_id: int = END_OF_TEXT_ID) -> dict[str, Any]:
    """What the data pipeline makes of one message: its tokens, ids, and the padded sequence.

    The padded (and, if needed, truncated) sequence comes from ``gptlib.train.encode_message``,
    the function ``classify_review`` uses.
    """
    tokenizer = tokenizer or get_tokenizer()
    ids = tokenizer.encode(text, disallowed_special=())
    padded = encode_message(text, tokenizer, context_length=max(max_length, 1),
                            max_length=max_length, pad_token_id=pad_token_id) if text.strip() else []
    return {
        "tokens": [tokenizer.decode([i]) for i in ids],
        "ids": ids,
        "n_tokens": len(ids),
        "padded": padded,
        "pad_tokens": max(max_length - len(ids), 0) if padded else 0,
        "truncated_tokens": max(len(ids) - max_length, 0) if padded else 0,
    }


def attention_weights(model: GPTModel, input_ids: torch.Tensor, block: int = 0) -> torch.Tensor:
    """Attention weights of one transformer block, worked out by hand: shape (heads, tokens, tokens).

    ``softmax(Q K^T / sqrt(head_dim))`` with the causal mask, from the block's ``W_query`` and
    ``W_key``, for the first message of ``input_ids`` (shape (1, tokens) or (tokens,)).

    Shown in notebooks/04_last_token_logits.
    """
    ids = input_ids if input_ids.dim() == 2 else input_ids.unsqueeze(0)
    with torch.no_grad():
        x = model.embed(ids[:1])
        for earlier in model.trf_blocks[:block]:
            x = earlier(x)
        blk = model.trf_blocks[block]
        att = blk.att
        h = blk.norm1(x)
        queries = att.split_heads(att.W_query(h))
        keys = att.split_heads(att.W_key(h))
        scores = queries @ keys.transpose(2, 3) / math.sqrt(att.head_dim)
        n = ids.shape[1]
        future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal=1)
        scores = scores.masked_fill(future, -torch.inf)
        return torch.softmax(scores, dim=-1)[0]
