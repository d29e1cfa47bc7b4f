"""Runs taking turns on a shared machine: at most K lab runs at once over every student's kernel.

Eight kernels training at once on two cores each get a quarter of a core, and the switching
between them costs more on top (each run's data leaves the caches at every switch). Taking
turns, K at a time, the same work ends sooner for nearly everyone: on 2 cores, 8 runs of 27 s
end at 27, 27, 54, ... 108 s instead of all at about 150 s.

A teacher sets ``GPTLIB_RUN_SLOTS`` to a folder holding K files named ``slot-1`` ... ``slot-K``
(``classroom/jupyterhub_config.py`` makes them: K = the machine's cores by default). The lab
takes one for each run with a file lock (``flock``), which the operating system lets go when
the run ends or its kernel dies, so no slot is ever lost; the files need only be readable (a
lock needs no write permission). Without the variable, runs start at once, as before. Waiting
is by polling, so turns are not strictly first come, first served.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no queue (a shared class machine is a Linux one)
    fcntl = None  # type: ignore[assignment]

ENV = "GPTLIB_RUN_SLOTS"


def slot_files() -> list[Path]:
    """The slot files of ``$GPTLIB_RUN_SLOTS`` (none where it is unset or names no such folder)."""
    folder = os.environ.get(ENV, "").strip()
    if not folder or fcntl is None:
        return []
    try:
        return sorted(Path(folder).expanduser().glob("slot-*"))
    except OSError:
        return []


def make_slots(folder: str | Path, count: int) -> list[Path]:
    """Create ``count`` slot files in ``folder`` (readable by everyone; the teacher's step)."""
    if count < 1:
        raise ValueError(f"a run queue needs at least one slot; got {count}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("slot-*"):  # fewer slots than before: the extra ones go
        number = old.name.removeprefix("slot-")
        if not number.isdigit() or int(number) > count:
            old.unlink()
    files = [folder / f"slot-{i}" for i in range(1, count + 1)]
    for path in files:
        path.touch()
        path.chmod(0o644)
    folder.chmod(0o755)
    return files


class RunSlot:
    """A slot held for one run; released by :meth:`release` or at the end of a ``with`` block
    (a slot of no queue holds nothing)."""

    def __init__(self, fd: int | None = None, path: Path | None = None):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the file lets the lock go
            self.fd = None

    def __enter__(self) -> RunSlot:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def take_slot(stop: threading.Event | None = None, on_wait: Callable[[int], object] | None = None,
              poll: float = 0.2) -> RunSlot | None:
    """A free slot of ``$GPTLIB_RUN_SLOTS``, waiting for one if all are taken (``on_wait(K)``
    is called once, when the wait begins). None if ``stop`` is set while waiting."""
    fds: dict[int, Path] = {}
    for path in slot_files():
        try:
            fds[os.open(path, os.O_RDONLY)] = path
        except OSError:
            continue
    if not fds:
        return RunSlot()
    waited = False
    try:
        while True:
            for fd, path in fds.items():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue
                del fds[fd]
                return RunSlot(fd, path)
            if not waited and on_wait is not None:
                on_wait(len(fds))
            waited = True
            if stop is not None and stop.wait(poll):
                return None
            if stop is None:
                time.sleep(poll)
    finally:
        for fd in fds:
            os.close(fd)
