"""One download-and-cache helper, shared by the data pipeline and the weight loader.

Every file lands atomically: bytes stream into a temporary file beside the target, are
checked (the size the server announced, and sha256 where known), and only then renamed into
place. An interrupted or corrupt transfer therefore never leaves a file that looks complete.
Each URL is retried, then the next URL (a mirror) is tried. When nothing works, one
``DownloadError`` says which URLs were tried, which file was wanted and where a manually
downloaded copy can be put.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from gptlib.files import CHUNK, atomic_path, atomic_write_bytes, cache_dir, sha256_of

__all__ = ["DownloadError", "atomic_write_bytes", "cache_dir", "download_file", "sha256_of"]


class DownloadError(RuntimeError):
    """A file could not be fetched from any of its URLs (the message says what to do)."""


def _fetch_once(url: str, dest: Path, sha256: str | None, timeout: float, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "gptlib"})
    with atomic_path(dest) as tmp, open(tmp, "wb") as out, \
            urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        digest = hashlib.sha256()
        received = 0
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=dest.name, disable=not progress, leave=False) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        out.flush()
        if expected is not None and received != expected:
            raise DownloadError(f"transfer cut short: got {received:,} of {expected:,} bytes")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DownloadError(f"checksum mismatch: sha256 {digest.hexdigest()}, expected {sha256}")


def download_file(
    urls: str | Sequence[str],
    dest: str | Path,
    sha256: str | None = None,
    *,
    retries: int = 2,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Fetch ``dest`` from the first URL that works; return its path.

    A ``dest`` that already exists (and matches ``sha256`` when given) is reused without any
    network access. Each URL gets ``retries`` extra tries with growing pauses; a 404 moves on
    to the next URL at once.
    """
    dest = Path(dest)
    url_list = [urls] if isinstance(urls, str) else list(urls)
    if dest.exists():
        if sha256 is None or sha256_of(dest) == sha256:
            return dest
        dest.unlink()  # a stale or damaged copy: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in url_list:
        for attempt in range(retries + 1):
            try:
                _fetch_once(url, dest, sha256, timeout, progress)
                return dest
            except urllib.error.HTTPError as err:
                failures.append(f"{url}: HTTP {err.code} {err.reason}")
                if 400 <= err.code < 500:
                    break  # not found / forbidden: retrying will not help
            except (urllib.error.URLError, OSError, http.client.HTTPException, DownloadError) as err:
                # HTTPException: e.g. IncompleteRead when a chunked transfer is cut short.
                reason = getattr(err, "reason", err)
                failures.append(f"{url}: {reason}")
                if isinstance(reason, socket.gaierror):
                    break  # the host name does not resolve (offline?): retrying will not help
            if attempt < retries:
                time.sleep(backoff * (2**attempt))
    tried = "\n".join(f"  - {f}" + (f" ({failures.count(f)} tries)" if failures.count(f) > 1 else "")
                      for f in dict.fromkeys(failures))
    raise DownloadError(
        f"Could not download {dest.name}.\nTried:\n{tried}\n"
        f"If you are offline, download it on a machine with internet access from\n"
        f"  {url_list[0]}\n"
        f"and copy it to\n  {dest}\n(or set GPTLIB_HOME to a folder that holds it)."
    )
