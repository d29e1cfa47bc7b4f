"""Base weights read from one file by memory mapping, so that every kernel on a machine shares them.

A class on one JupyterHub runs thirty kernels that each hold the same gpt2-small: 650 MB of
identical numbers per kernel. Read from one file with ``torch.load(..., mmap=True)``, the
tensors are pages of the operating system's file cache, which every process that maps the
file shares: N kernels cost about one copy. A tensor that a run changes gets a private copy
of the pages it writes (copy-on-write), so nothing a run does reaches the file or another
kernel; and gptlib's runs never write into a base anyway (``speed.shared_base``).

The file is the model's own ``state_dict`` in the book's layout, written once, atomically:

* random weights: made right after ``torch.manual_seed(seed)`` (the book's initial weights
  for that seed), keyed by model, seed and shape: ``$GPTLIB_HOME/bases/<model>-seed<N>-<hash>.pt``;
* OpenAI's weights: converted once from the downloaded file, keyed by that file's size and
  modification time.

A class shares one file: the teacher's ``python -m gptlib cache warm --into FOLDER`` writes it
to ``FOLDER/bases/``, and a kernel whose ``GPTLIB_SHARED_STORE`` names FOLDER maps it from
there (read-only: never written or deleted). Otherwise each ``$GPTLIB_HOME`` keeps its own
(``GPTLIB_BASES_DIR`` overrides where). At most :data:`KEEP_FILES` of one's own base files are
kept (least recently used first out; gpt2-small's is 650 MB). ``GPTLIB_MAP_WEIGHTS=0`` turns mapping off (each process builds its own copy, as
before), which is what ``benchmarks/classroom.py`` compares against.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gptlib.speed.store import shared_folder
from gptlib.support.files import atomic_path, cache_dir
from gptlib.support.meta import on_meta

KEEP_FILES = 4
ENV = "GPTLIB_MAP_WEIGHTS"


def mapping_on() -> bool:
    """Whether bases are mapped from a file (``GPTLIB_MAP_WEIGHTS``: on unless 0/false/no/off)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def bases_folder() -> Path:
    """Where this process writes base files: ``$GPTLIB_BASES_DIR``, else ``$GPTLIB_HOME/bases``."""
    folder = os.environ.get("GPTLIB_BASES_DIR", "").strip()
    return Path(folder).expanduser() if folder else cache_dir() / "bases"


def shared_copy(name: str) -> Path | None:
    """The class's copy of a base file (``$GPTLIB_SHARED_STORE/bases/<name>``), if it is there."""
    folder = shared_folder()  # the store's one reading of GPTLIB_SHARED_STORE (None for a grader)
    path = folder / "bases" / name if folder is not None else None
    return path if path is not None and _readable(path) else None


def base_file(model_size: str, cfg: dict, source: str) -> Path:
    """Where the mapped file of one base lives: named for people, keyed by what makes it."""
    key = hashlib.sha256(json.dumps({"cfg": cfg, "source": source}, sort_keys=True, default=str).encode())
    stem = re.sub(r"[^A-Za-z0-9.]+", "-", f"{model_size}-{source.split(':')[0]}").strip("-")
    return bases_folder() / f"{stem}-{key.hexdigest()[:16]}.pt"


def mapped_model(path: Path, make: Callable[[], nn.Module], skeleton: Callable[[], nn.Module]) -> nn.Module:
    """The model whose weights are mapped from ``path``; the file is written first from
    ``make()`` when missing or unreadable. ``skeleton()`` builds the same module (on any
    device; its own weights are replaced by the file's, not copied into).

    A file that cannot be written or read leaves the model as ``make()`` built it, unmapped."""
    shared = shared_copy(path.name)
    if shared is not None:
        try:
            return _map(shared, skeleton)
        except Exception:  # damaged: skipped, never changed; this process uses its own copy
            pass
    model = None
    if not _readable(path):
        model = make()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp)
            _forget_old(keep=path)
        except (OSError, RuntimeError):  # a read-only or full disk: this process keeps its own copy
            return model
    try:
        mapped = _map(path, skeleton)
    except Exception:  # damaged (another process's half file cannot be: writes are atomic)
        path.unlink(missing_ok=True)
        return model if model is not None else make()
    try:
        os.utime(path)  # last use, for the least-recently-used order
    except OSError:
        pass
    return mapped


def _map(path: Path, skeleton: Callable[[], nn.Module]) -> nn.Module:
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    with on_meta():
        mapped = skeleton()
    mapped.load_state_dict(state, assign=True)
    if any(t.is_meta for t in [*mapped.parameters(), *mapped.buffers()]):
        raise ValueError("the file does not hold every tensor of the model")
    return mapped


def _readable(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _forget_old(keep: Path) -> None:
    """Keep the :data:`KEEP_FILES` most recently used base files."""
    try:
        files = sorted(bases_folder().glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in files[KEEP_FILES:]:
        if old != keep:
            old.unlink(missing_ok=True)
