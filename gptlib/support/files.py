"""Files gptlib writes: where its cache lives, and the one atomic writer every artefact goes through.

A file written with :func:`atomic_path` (or :func:`atomic_write_bytes`) appears whole or not
at all: the bytes go into a temporary file beside the target, are flushed to disk, and only
then renamed into place. A killed process leaves at most a hidden ``.*.part`` file, which is
never taken for the real one. A folder of files that belong together (a run's checkpoint,
metrics and plots) is written with :func:`atomic_folder`: it appears whole, in one step, or
the previous folder stays as it was.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CHUNK = 1 << 20


def _read_umask() -> int:
    """The process's umask, read once at import (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# What gptlib writes follows the umask, as open() and mkdir() would: temporary files and
# folders are made owner-only (0600/0700), which would leave a class's shared release, runs and
# plots unreadable to everyone else on a shared machine or a hub.
UMASK = _read_umask()


def _shareable(path: Path, folder: bool = False) -> None:
    os.chmod(path, (0o777 if folder else 0o666) & ~UMASK)


def cache_dir() -> Path:
    """gptlib's cache folder: ``$GPTLIB_HOME``, else ``$XDG_CACHE_HOME/gptlib`` or ``~/.cache/gptlib``."""
    home = os.environ.get("GPTLIB_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gptlib"


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the
    temporary file is synced and renamed to ``path``. On any error (or a kill) the target is
    untouched and the temporary file is removed (or left hidden as ``.name.*.part``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _shareable(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def probe_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check that a file can be written in it (OSError if not:
    read-only, a regular file in the way, no permission). Finds that out before long work."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".gptlib-write-test-")
    os.close(fd)
    Path(probe).unlink()
    return folder


def check_writable(output: str | Path, figures: str | Path | None = None) -> None:
    """Raise ValueError, naming the flag, when a run's ``--output`` folder (or ``--figures``)
    cannot be written (read-only, no permission, a file in the way): found before any training."""
    output = Path(output)
    folders = [("output", output.parent), ("output", output)] if output.exists() else [("output", output.parent)]
    if figures:
        folders.append(("figures", Path(figures)))
    for name, folder in folders:
        if name == "output" and output.exists() and not output.is_dir():
            raise ValueError(f"--output {output}: a file is in the way (the output must be a folder); "
                             "choose another --output.")
        try:
            probe_writable(folder)
        except OSError as err:
            given = output if name == "output" else figures
            raise ValueError(f"--{name} {given}: cannot write in {folder} ({err.strerror or err}); "
                             f"choose a folder you can write with --{name}"
                             + (" (or --figures none for no plots)." if name == "figures" else ".")) from None


_STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|previous)-(?P<pid>\d+)-[^/]*$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tidy(target: Path) -> None:
    """Remove staging folders that a killed run left beside ``target``, and put back a previous
    folder that a run killed between its two renames left aside (only without RENAME_EXCHANGE)."""
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        m = _STAGED.match(entry.name)
        if not m or m["name"] != target.name or _alive(int(m["pid"])):
            continue
        if m["kind"] == "previous" and not target.exists():
            os.rename(entry, target)
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system cannot (another OS, an old kernel, a file system without it)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextmanager
def atomic_folder(target: str | Path, carry: Callable[[str], bool] = lambda name: False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; when the block ends without an error,
    the staging folder replaces ``target`` in one step, so that ``target`` holds either the
    previous complete set of files or the new one, never a mix, whenever the process is
    stopped. Entries of the old folder for which ``carry(name)`` is true (other runs' folders,
    a reader's own files) are moved into the new one. On an error, or Ctrl-C, the staging
    folder is removed and ``target`` is untouched; one left by a killed process is removed by
    the next call."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _tidy(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "a file is in the way of the output folder", str(target))
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-{os.getpid()}-"))
    _shareable(staging, folder=True)
    try:
        yield staging
        if not target.exists():
            os.rename(staging, target)
            return
        if _exchange(staging, target):
            old = staging  # the swap left the previous folder at the staging path
        else:
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.previous-{os.getpid()}-"))
            os.rmdir(old)
            os.rename(target, old)
            os.rename(staging, target)
        for entry in list(old.iterdir()):
            if carry(entry.name) and not (target / entry.name).exists():
                os.rename(entry, target / entry.name)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
