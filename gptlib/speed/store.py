"""A store of frozen activations, shared by every run: in memory for this process, on disk for the next.

With the book's settings, the embeddings and the first 11 blocks are frozen, so each message
goes through them to the same activations in every run that uses the same frozen weights.
:class:`gptlib.speed.cached.CachedClassifier` computes them once per message (``warm_up``) and puts
the whole set here; a second run (another learning rate, more epochs, dropout in the part
that trains) takes it back in a fraction of a second instead of recomputing it.

What decides the frozen output is the entry's key (:func:`set_digest`):

* a sha256 fingerprint of the frozen tensors themselves (not a file name);
* the model config, the number of frozen blocks, the compute and storage dtypes;
* every message's token ids, cut to the positions that are kept.

Change any of these and the key changes, so an entry is never stale. On disk an entry is one
file, ``$GPTLIB_HOME/activations/<key>.pt``, written atomically and holding a sha256 of its
activations: a truncated or corrupt file is detected, deleted and recomputed. Memory and disk
are bounded (``GPTLIB_STORE_RAM_MB``, ``GPTLIB_STORE_DISK_MB``), least recently used first out.
A disk that cannot be written (read-only, full) leaves the store working in memory, with one
line saying so. Two processes can share the folder: each file appears whole or not at all.

**A class's shared store.** A teacher computes the entries once (``python -m gptlib cache warm
--into FOLDER``) into a folder the students can read but not write, and every student's kernel
names it in ``GPTLIB_SHARED_STORE``. It is read after the student's own store, mapped from the
file (``mmap``: N kernels share one copy in the page cache), checked against its sha256, and
never written, touched or deleted. A shared store that is missing, or an entry that is damaged,
is skipped with one line; a stale one is never found (its key differs). Each student's own
entries go to their own ``$GPTLIB_HOME``. Graders never read it (``gptlib.assignments``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptlib.support.environ import grading
from gptlib.support.files import atomic_path, cache_dir
from gptlib.support.fingerprint import tensor_bytes as _tensor_bytes
from gptlib.support.fingerprint import weights_fingerprint  # noqa: F401  (part of the store's key)

FORMAT = 2
ENTRY_NAME = re.compile(r"[0-9a-f]{32}\.pt")
DEFAULT_RAM_MB = 2048
DEFAULT_DISK_MB = 4096
SHARED_ENV = "GPTLIB_SHARED_STORE"


def set_digest(prefix: dict[str, Any], messages: Iterable[tuple[int, ...]]) -> str:
    """The key of one set of activations: what made the frozen part (``prefix``) and the
    kept token ids of every message, in order."""
    digest = hashlib.sha256(json.dumps(prefix, sort_keys=True, default=str).encode())
    _hash_messages(digest, messages)
    return digest.hexdigest()[:32]


def _hash_messages(digest, messages: Iterable[tuple[int, ...]]) -> None:
    """Feed each message's length and token ids to ``digest`` (lengths keep the split unambiguous)."""
    for ids in messages:
        digest.update(len(ids).to_bytes(4, "little"))
        digest.update(torch.tensor(ids, dtype=torch.int32).numpy().tobytes())


@dataclass
class ActivationSet:
    """The kept activations of many messages in one slab: message ``i`` is
    ``slab[starts[i]: starts[i] + len(messages[i])]``."""

    messages: list[tuple[int, ...]]
    slab: torch.Tensor

    def __post_init__(self) -> None:
        starts, total = [], 0
        for ids in self.messages:
            starts.append(total)
            total += len(ids)
        if total != self.slab.shape[0]:
            raise ValueError(f"The slab has {self.slab.shape[0]} rows but the messages hold {total} tokens.")
        self.starts = starts

    @property
    def nbytes(self) -> int:
        return self.slab.numel() * self.slab.element_size()

    def rows(self) -> dict[tuple[int, ...], torch.Tensor]:
        """Each message's activations, as views into the slab."""
        return {ids: self.slab[s: s + len(ids)] for ids, s in zip(self.messages, self.starts, strict=True)}

    def checksum(self) -> str:
        """sha256 over the messages' token ids and the activations: what an entry must match."""
        digest = hashlib.sha256()
        _hash_messages(digest, self.messages)
        digest.update(_tensor_bytes(self.slab.reshape(-1)))
        return digest.hexdigest()


class ActivationStore:
    """Sets of frozen activations by key, in memory (LRU, ``max_ram_bytes``) and under ``root``
    on disk (LRU by last use, ``max_disk_bytes``). ``root=None``: memory only."""

    def __init__(self, root: str | Path | None, max_ram_bytes: int, max_disk_bytes: int,
                 say=print, shared: str | Path | None = None):
        self.root = Path(root) if root is not None else None
        self.shared = Path(shared) if shared else None  # read-only: never written, touched or deleted
        self._shared_skipped: set[str] = set()  # keys (or "folder") already reported once
        self.max_ram_bytes = max_ram_bytes
        self.max_disk_bytes = max_disk_bytes
        self._say = say
        self._ram: OrderedDict[str, ActivationSet] = OrderedDict()
        self._lock = threading.Lock()
        self.disk_off_reason: str | None = None if root is not None else "no folder given"
        self.stats = {"ram_hits": 0, "disk_hits": 0, "shared_hits": 0, "misses": 0, "corrupt": 0}

    # -- reading ---------------------------------------------------------------------------
    def get(self, key: str) -> tuple[ActivationSet, str] | None:
        """The set under ``key`` and where it came from ("memory" or "disk"), or None."""
        with self._lock:
            found = self._ram.get(key)
            if found is not None:
                self._ram.move_to_end(key)
                self.stats["ram_hits"] += 1
                return found, "memory"
        loaded, where = self._load(key), "disk"
        if loaded is None:
            loaded, where = self._load_shared(key), "shared"
        if loaded is None:
            self.stats["misses"] += 1
            return None
        self.stats[f"{where}_hits"] += 1
        self._remember(key, loaded)
        return loaded, where

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / f"{key}.pt"

    def _load(self, key: str) -> ActivationSet | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            found = _read_entry(path, key)
        except FileNotFoundError:
            return None
        except Exception as err:  # truncated, corrupt, another format: recompute, never use
            self.stats["corrupt"] += 1
            self._say(f"Activation store: {path} is unreadable ({type(err).__name__}: {err}); "
                      "deleting it, the activations are computed again.")
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a read-only shared folder: leave it, never use it
                pass
            return None
        try:
            os.utime(path)  # last use, for the disk's least-recently-used order
        except OSError:
            pass
        return found

    def _load_shared(self, key: str) -> ActivationSet | None:
        """The entry from the read-only shared store, mapped from its file; None (with one line,
        once) where the folder is missing or the entry damaged. Nothing there is ever changed."""
        if self.shared is None or key in self._shared_skipped:
            return None
        if not self.shared.is_dir():
            if "folder" not in self._shared_skipped:
                self._shared_skipped.add("folder")
                self._say(f"Shared store {self.shared} (GPTLIB_SHARED_STORE) is not a folder here; skipped, "
                          "so the frozen activations are computed for you.")
            return None
        path = self.shared / f"{key}.pt"
        try:
            return _read_entry(path, key, mmap=True)
        except FileNotFoundError:
            return None
        except Exception as err:  # damaged: never trusted, never written, never deleted
            self._shared_skipped.add(key)
            self.stats["corrupt"] += 1
            self._say(f"Shared store: {path.name} is unreadable ({type(err).__name__}); skipped (the shared "
                      "copy is left as it is), so the frozen activations are computed for you.")
            return None

    # -- writing ---------------------------------------------------------------------------
    def put(self, key: str, found: ActivationSet, meta: dict[str, Any] | None = None) -> None:
        """Keep a set in memory and, where the disk allows, on disk (atomically)."""
        self._remember(key, found)
        if self.root is None or self.disk_off_reason is not None:
            return
        if found.nbytes > self.max_disk_bytes:
            return
        payload = {
            "format": FORMAT, "key": key, "meta": json.dumps(meta or {}, default=str),
            "lengths": torch.tensor([len(m) for m in found.messages], dtype=torch.int64),
            "ids": torch.tensor([t for m in found.messages for t in m], dtype=torch.int64),
            "slab": found.slab.detach().cpu().contiguous(), "sha256": found.checksum(),
        }
        try:
            with atomic_path(self._path(key)) as tmp:
                torch.save(payload, tmp)
        except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
            self.disk_off_reason = f"{self.root}: {getattr(err, 'strerror', None) or err}"
            self._say(f"Activation store: cannot write to {self.disk_off_reason}; "
                      "keeping activations in memory only for this process.")
            return
        self._evict_disk(keep=key)

    def _remember(self, key: str, found: ActivationSet) -> None:
        if found.nbytes > self.max_ram_bytes:  # a set over the bound alone is not kept (nor evicts)
            return
        with self._lock:
            self._ram[key] = found
            self._ram.move_to_end(key)
            total = sum(s.nbytes for s in self._ram.values())
            while total > self.max_ram_bytes and len(self._ram) > 1:
                _, old = self._ram.popitem(last=False)
                total -= old.nbytes

    def disk_entries(self) -> list[Path]:
        """The entry files on disk, least recently used first."""
        if self.root is None or not self.root.is_dir():
            return []
        entries = []
        for path in self.root.glob("*.pt"):
            if not ENTRY_NAME.fullmatch(path.name):  # only our own files: never a user's .pt
                continue
            try:
                entries.append((path.stat().st_mtime, path))
            except FileNotFoundError:  # removed by another process meanwhile
                continue
        return [p for _, p in sorted(entries)]

    def _evict_disk(self, keep: str) -> None:
        entries = self.disk_entries()
        sizes = {p: _size(p) for p in entries}
        total = sum(sizes.values())
        for path in entries:
            if total <= self.max_disk_bytes:
                break
            if path.stem == keep:
                continue
            path.unlink(missing_ok=True)
            total -= sizes[path]

    # -- telling and clearing ----------------------------------------------------------------
    def ram_bytes(self) -> int:
        with self._lock:
            return sum(s.nbytes for s in self._ram.values())

    def disk_bytes(self) -> int:
        return sum(_size(p) for p in self.disk_entries())

    def info(self) -> dict[str, Any]:
        return {
            "folder": str(self.root) if self.root else None,
            "disk_entries": len(self.disk_entries()), "disk_bytes": self.disk_bytes(),
            "max_disk_bytes": self.max_disk_bytes, "ram_entries": len(self._ram),
            "ram_bytes": self.ram_bytes(), "max_ram_bytes": self.max_ram_bytes,
            "disk_off": self.disk_off_reason, **self.stats,
        }

    def describe(self) -> str:
        i = self.info()
        disk = (f"{i['disk_entries']} on disk, {i['disk_bytes'] / 2**20:,.1f} MiB of "
                f"{i['max_disk_bytes'] / 2**20:,.0f} MiB in {i['folder']}" if i["disk_off"] is None
                else f"disk off ({i['disk_off']})")
        return (f"activation store: {i['ram_entries']} set(s) in memory, {i['ram_bytes'] / 2**20:,.1f} MiB "
                f"of {i['max_ram_bytes'] / 2**20:,.0f} MiB; {disk}")

    def clear(self, memory: bool = True, disk: bool = True) -> int:
        """Forget entries; returns the number of files removed. Safe while another process
        uses the folder: it keeps what it has in memory and recomputes what it misses."""
        if memory:
            with self._lock:
                self._ram.clear()
        removed = 0
        if disk:
            for path in self.disk_entries():
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
            stale = time.time() - 3600  # a killed writer's leftovers (a live one's are younger)
            for path in self.root.glob(".*.part") if self.root is not None and self.root.is_dir() else []:
                try:
                    if path.stat().st_mtime < stale:
                        path.unlink()
                except OSError:
                    pass
        return removed


def _read_entry(path: Path, key: str, mmap: bool = False) -> ActivationSet:
    """One entry from its file, checked: format, key and the activations' sha256. ``mmap``:
    the activations stay pages of the file (shared by every process that maps it)."""
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    if payload.get("format") != FORMAT or payload.get("key") != key:
        raise ValueError("not an entry of this store's format and key")
    lengths = payload["lengths"].tolist()
    flat = payload["ids"].tolist()
    messages, start = [], 0
    for n in lengths:
        messages.append(tuple(flat[start: start + n]))
        start += n
    found = ActivationSet(messages, payload["slab"])
    if found.checksum() != payload["sha256"]:
        raise ValueError("its activations do not match their sha256")
    return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _env_mb(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default * 2**20
    try:
        mb = float(value)
    except ValueError:
        mb = math.nan
    if not math.isfinite(mb):
        raise ValueError(f"{name}={value!r} is not a number of MiB; e.g. {name}={default}.")
    if mb < 0:
        raise ValueError(f"{name}={value!r} must be >= 0 MiB.")
    return int(mb * 2**20)


_default: ActivationStore | None = None
_default_lock = threading.Lock()


def store_folder() -> Path:
    """Where the disk half of the store lives: ``$GPTLIB_STORE_DIR``, else ``$GPTLIB_HOME/activations``."""
    folder = os.environ.get("GPTLIB_STORE_DIR")
    return Path(folder).expanduser() if folder else cache_dir() / "activations"


def shared_folder() -> Path | None:
    """The class's read-only shared store, ``$GPTLIB_SHARED_STORE`` (None when unset). A
    grading process never reads one: a student could have named a folder they write."""
    if grading():
        return None
    folder = os.environ.get(SHARED_ENV, "").strip()
    return Path(folder).expanduser() if folder else None


def default_store() -> ActivationStore:
    """This process's store (made on first use, under :func:`store_folder`, reading the shared
    store of :func:`shared_folder` after its own)."""
    global _default
    with _default_lock:
        if _default is None or _default.root != store_folder() or _default.shared != shared_folder():
            _default = ActivationStore(store_folder(), _env_mb("GPTLIB_STORE_RAM_MB", DEFAULT_RAM_MB),
                                       _env_mb("GPTLIB_STORE_DISK_MB", DEFAULT_DISK_MB), shared=shared_folder())
        return _default
