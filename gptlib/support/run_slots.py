"""Runs taking turns on a shared machine: at most K lab runs at once over every student's kernel.

Eight kernels training at once on two cores each get a quarter of a core, and the switching
between them costs more on top (each run's data leaves the caches at every switch). Taking
turns, K at a time, the same work ends sooner for nearly everyone: on 2 cores, 8 runs of 27 s
end at 27, 27, 54, ... 108 s instead of all at about 150 s.

A teacher sets ``GPTLIB_RUN_SLOTS`` to a folder holding K files named ``slot-1`` ... ``slot-K``
(``classroom/jupyterhub_config.py`` makes them: K = the machine's cores by default). The lab
takes one for each run with a file lock (``flock``), which the operating system lets go when
the run ends or its kernel dies, so no slot is ever lost; the files need only be readable (a
lock needs no write permission). Runs waiting for a slot stand in line, first come, first
served (a ticket file each in ``line/``, which everyone may write). Without the variable, runs
start at once, as before. The queue is cooperative, not a security boundary: a student's own
code can use the CPU outside it.
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
LINE = "line"  # the waiting line's folder inside the slots' folder


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
    (folder / LINE).mkdir(exist_ok=True)
    (folder / LINE).chmod(0o1777)  # every kernel may join the line; only its owner removes a ticket
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
    """A free slot of ``$GPTLIB_RUN_SLOTS``, waiting in line for one if all are taken
    (``on_wait(K)`` is called once, when the wait begins). None if ``stop`` is set while waiting."""
    files = slot_files()
    fds: dict[int, Path] = {}
    for path in files:
        try:
            fds[os.open(path, os.O_RDONLY)] = path
        except OSError:
            continue
    if not fds:
        return RunSlot()
    ticket = _Ticket(files[0].parent / LINE)
    waited = False
    try:
        while True:
            if ticket.first():
                for fd, path in fds.items():
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:  # another run holds it
                        continue
                    except OSError:  # a file system without locks: no queue rather than no run
                        return RunSlot()
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
        ticket.leave()
        for fd in fds:
            os.close(fd)


class _Ticket:
    """A place in line: a file in the slots' ``line/`` folder (everyone may write there, as in
    /tmp), named by the time it joined and locked while it waits. Only the first live ticket
    tries the slots, so a run that has just ended cannot take its slot again ahead of those
    already waiting. A ticket whose kernel died is no longer locked, and is skipped. Without
    the folder (or where it cannot be written) turns are taken in no particular order."""

    def __init__(self, line: Path):
        self.path: Path | None = None
        self.fd: int | None = None
        path = line / f"{time.time_ns():020d}-{os.getpid()}-{threading.get_ident()}"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no locks here: no line
            os.close(fd)
            path.unlink(missing_ok=True)
            return
        self.path, self.fd = path, fd

    def first(self) -> bool:
        """Whether no live ticket joined before this one (names sort by joining time)."""
        if self.path is None:
            return True
        try:
            ahead = sorted(p for p in self.path.parent.iterdir() if p.name < self.path.name)
        except OSError:
            return True
        return not any(_held(p) for p in ahead)

    def leave(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.path = self.fd = None


def _held(path: Path) -> bool:
    """Whether a process holds ``path``'s lock (its ticket's owner is alive and waiting)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
