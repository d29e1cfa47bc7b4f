"""Files gptlib writes: where its cache lives, and the one atomic writer every artefact goes through.

A file written with :func:`atomic_path` (or :func:`atomic_write_bytes`) appears whole or not
at all: the bytes go into a temporary file beside the target, are flushed to disk, and only
then renamed into place. A killed process leaves at most a hidden ``.*.part`` file, which is
never taken for the real one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHUNK = 1 << 20


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
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
