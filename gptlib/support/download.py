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
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from gptlib.support.files import (
    CHUNK,
    atomic_path,
    probe_writable,
    sha256_of,
)

__all__ = ["DownloadError", "download_file"]


class DownloadError(RuntimeError):
    """A file could not be fetched from any of its URLs (the message says what to do).
    ``tried``: each URL with what went wrong; ``http_status``: the HTTP codes servers answered."""

    def __init__(self, message: str, tried: Sequence[str] = (), http_status: Sequence[int] = ()):
        super().__init__(message)
        self.tried, self.http_status = list(tried), list(http_status)


def _reason(err: BaseException) -> str:
    """What went wrong with one URL, in a few words."""
    reason = getattr(err, "reason", err)
    if isinstance(reason, socket.gaierror):
        return "the host name does not resolve (offline?)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out: no answer in time"
    return str(reason)


def default_timeout() -> float:
    """Seconds a download waits for the server: ``$GPTLIB_DOWNLOAD_TIMEOUT``, else 60 (the book's)."""
    text = os.environ.get("GPTLIB_DOWNLOAD_TIMEOUT", "").strip()
    if not text:
        return 60.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DownloadError(f"GPTLIB_DOWNLOAD_TIMEOUT must be a number of seconds above 0; got {text!r}.")
    return value


def _fetch_once(url: str, dest: Path, sha256: str | None, timeout: float, progress: bool,
                check: Callable[[Path], object] | None = None, headers: Mapping[str, str] | None = None) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "gptlib"})
    for name, value in (headers or {}).items():
        request.add_unredirected_header(name, value)  # a token stays with the host it was meant for
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
        if check is not None:  # e.g. an HTML page served under the file's name: never cached
            try:
                check(tmp)
            except ValueError as err:  # name the file wanted, not the temporary one
                raise DownloadError(f"the server sent something else: {str(err).replace(str(tmp), dest.name)}") from None


def download_file(
    urls: str | Sequence[str],
    dest: str | Path,
    sha256: str | None = None,
    *,
    retries: int = 2,
    timeout: float | None = None,
    backoff: float = 1.0,
    progress: bool = True,
    check: Callable[[Path], object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Path:
    """Fetch ``dest`` from the first URL that works; return its path.

    A ``dest`` that already exists (and matches ``sha256`` when given, and passes ``check``)
    is reused without any network access. Each URL gets ``retries`` extra tries with growing
    pauses; a 404 moves on to the next URL at once. ``check(path)`` raises ValueError for
    content that is not what was wanted; such a file never enters the cache. ``timeout``
    defaults to :func:`default_timeout`. ``headers`` (e.g. ``Authorization`` for a gated
    repository) go to the server asked, never to a host it redirects to.
    """
    dest = Path(dest)
    timeout = default_timeout() if timeout is None else timeout
    if not timeout > 0:
        raise DownloadError(f"The download timeout must be above 0 seconds; got {timeout}.")
    url_list = [urls] if isinstance(urls, str) else list(urls)
    if dest.exists():
        if _usable(dest, sha256, check):
            return dest
        dest.unlink()  # a stale or damaged copy: fetch it again
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        probe_writable(dest.parent)
    except OSError as err:
        raise DownloadError(f"Cannot write the cache folder {dest.parent} ({err.strerror or err}); set "
                            "GPTLIB_HOME to a folder you can write.") from None
    failures: list[tuple[str, str]] = []
    codes: list[int] = []
    for url in url_list:
        for attempt in range(retries + 1):
            try:
                _fetch_once(url, dest, sha256, timeout, progress, check, headers)
                return dest
            except urllib.error.HTTPError as err:
                failures.append((url, f"HTTP {err.code} {err.reason}"))
                codes.append(err.code)
                if 400 <= err.code < 500:
                    break  # not found / forbidden: retrying will not help
            except (urllib.error.URLError, OSError, http.client.HTTPException, DownloadError) as err:
                # HTTPException: e.g. IncompleteRead when a chunked transfer is cut short.
                failures.append((url, _reason(err)))
                if isinstance(getattr(err, "reason", err), socket.gaierror):
                    break  # the host name does not resolve (offline?): retrying will not help
            if attempt < retries:
                time.sleep(backoff * (2**attempt))
    tried = [f"{url}: {why}" + (f" ({failures.count((url, why))} tries)" if failures.count((url, why)) > 1 else "")
             for url, why in dict.fromkeys(failures)]
    reasons = "; ".join(dict.fromkeys(why for _, why in failures))
    raise DownloadError(
        f"Could not download {dest.name} from any of {len(url_list)} address(es) ({reasons}). Offline? Fetch it "
        f"on a machine with internet access from {url_list[0]} and copy it to {dest} (or set GPTLIB_HOME to a "
        "folder that holds it).", tried, codes)


def _usable(path: Path, sha256: str | None, check: Callable[[Path], object] | None) -> bool:
    if sha256 is not None and sha256_of(path) != sha256:
        return False
    if check is not None:
        try:
            check(path)
        except ValueError:
            return False
    return True
