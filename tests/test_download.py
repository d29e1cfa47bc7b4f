"""gptlib.support.download.download_file against a local HTTP server whose behaviour each test sets.

After every case the destination folder must hold only complete, verified files: no
``*.part`` temporary files and no partial destination."""

from __future__ import annotations

import collections
import hashlib
import socket
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from gptlib.support.download import DownloadError, download_file
from gptlib.support.files import atomic_write_bytes, cache_dir, sha256_of

DATA = bytes(range(256)) * 4000 + b"tail"  # ~1 MB: more than one read chunk
MIRROR_DATA = b"mirror copy " * 5000
FAST = {"retries": 0, "backoff": 0.0, "timeout": 5.0, "progress": False}

Behaviour = Callable[[BaseHTTPRequestHandler], None]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- server behaviours


def serve(data: bytes) -> Behaviour:
    def behave(h):
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)

    return behave


def status(code: int) -> Behaviour:
    def behave(h):
        h.send_error(code)

    return behave


def cut_short(data: bytes, sent: int) -> Behaviour:
    """Announce all of ``data`` but send only ``sent`` bytes, then close the connection."""

    def behave(h):
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data[:sent])
        h.wfile.flush()
        h.close_connection = True

    return behave


def chunked_cut_short(data: bytes) -> Behaviour:
    """A chunked response whose first chunk stops half-way, then the connection closes."""

    def behave(h):
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(f"{len(data):x}\r\n".encode() + data[: len(data) // 2])
        h.wfile.flush()
        h.close_connection = True

    return behave


def stall(seconds: float) -> Behaviour:
    """Send headers, then nothing for ``seconds`` (longer than the client's timeout)."""

    def behave(h):
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        time.sleep(seconds)
        h.close_connection = True

    return behave


class Server:
    def __init__(self):
        # path -> a behaviour, or a list of behaviours used one per request (last one repeats)
        self.routes: dict[str, Behaviour | list[Behaviour]] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        n = self.hits[h.path]
        self.hits[h.path] += 1
        route = self.routes.get(h.path, status(404))
        if isinstance(route, list):
            route = route[min(n, len(route) - 1)]
        try:
            route(h)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())


@pytest.fixture
def server(serve_http):
    state = Server()
    state.port = serve_http(state.handle, protocol="HTTP/1.1")
    return state


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "cache" / "sub"  # does not exist yet: download_file creates it


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_only(folder: Path, expected: dict[str, bytes]) -> None:
    """The folder holds exactly ``expected`` (name -> bytes): no temp files, no partial file."""
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert names == sorted(expected), f"unexpected folder contents {names}"
    for name, data in expected.items():
        assert (folder / name).read_bytes() == data


# --------------------------------------------------------------------------- success


def test_success_with_checksum(server, folder):
    server.routes["/f.bin"] = serve(DATA)
    dest = folder / "f.bin"
    result = download_file(server.url("/f.bin"), dest, sha256=sha(DATA), **FAST)
    assert result == dest
    assert sha256_of(dest) == sha(DATA)
    assert server.hits["/f.bin"] == 1
    assert_only(folder, {"f.bin": DATA})


def test_success_without_checksum_and_str_dest(server, folder):
    server.routes["/f.bin"] = serve(b"small")
    result = download_file([server.url("/f.bin")], str(folder / "f.bin"), **FAST)
    assert result == folder / "f.bin"
    assert_only(folder, {"f.bin": b"small"})


def test_empty_file(server, folder):
    server.routes["/empty"] = serve(b"")
    download_file(server.url("/empty"), folder / "empty", sha256=sha(b""), **FAST)
    assert_only(folder, {"empty": b""})


# --------------------------------------------------------------------------- mirrors


def test_404_goes_to_mirror_without_retrying(server, folder):
    server.routes["/mirror"] = serve(MIRROR_DATA)
    dest = folder / "f.bin"
    download_file([server.url("/missing"), server.url("/mirror")], dest,
                  sha256=sha(MIRROR_DATA), retries=2, backoff=0.0, timeout=5.0, progress=False)
    assert server.hits["/missing"] == 1  # a 404 is final: no retries
    assert server.hits["/mirror"] == 1
    assert_only(folder, {"f.bin": MIRROR_DATA})


def test_404_everywhere(server, folder):
    dest = folder / "f.bin"
    with pytest.raises(DownloadError) as err:
        download_file([server.url("/a"), server.url("/b")], dest, **FAST)
    msg = str(err.value)
    assert server.url("/a") in msg and "404" in msg  # one line: the first address and what went wrong
    assert [t.split(": ")[0] for t in err.value.tried] == [server.url("/a"), server.url("/b")]
    assert err.value.http_status == [404, 404]
    assert_only(folder, {})


def test_cut_short_falls_to_mirror(server, folder):
    server.routes["/short"] = cut_short(DATA, 1000)
    server.routes["/mirror"] = serve(DATA)
    dest = folder / "f.bin"
    download_file([server.url("/short"), server.url("/mirror")], dest, **FAST)
    assert server.hits["/short"] == 1 and server.hits["/mirror"] == 1
    assert_only(folder, {"f.bin": DATA})


def test_cut_short_without_mirror_raises(server, folder):
    server.routes["/short"] = cut_short(DATA, 1000)
    dest = folder / "f.bin"
    with pytest.raises(DownloadError) as err:
        download_file(server.url("/short"), dest, **FAST)
    assert "cut short" in str(err.value)
    assert_only(folder, {})


def test_cut_short_is_caught_even_without_checksum_or_retry_success(server, folder):
    # Retries see the same cut: each attempt is thrown away, none is kept.
    server.routes["/short"] = cut_short(DATA, len(DATA) - 1)
    with pytest.raises(DownloadError):
        download_file(server.url("/short"), folder / "f.bin", retries=2, backoff=0.0,
                      timeout=5.0, progress=False)
    assert server.hits["/short"] == 3
    assert_only(folder, {})


def test_chunked_cut_short_falls_to_mirror(server, folder):
    server.routes["/chunked"] = chunked_cut_short(DATA)
    server.routes["/mirror"] = serve(DATA)
    dest = folder / "f.bin"
    download_file([server.url("/chunked"), server.url("/mirror")], dest, sha256=sha(DATA),
                  **FAST)
    assert server.hits["/mirror"] == 1
    assert_only(folder, {"f.bin": DATA})


def test_chunked_cut_short_without_mirror_raises_download_error(server, folder):
    server.routes["/chunked"] = chunked_cut_short(DATA)
    with pytest.raises(DownloadError):
        download_file(server.url("/chunked"), folder / "f.bin", **FAST)
    assert_only(folder, {})


def test_server_error_is_retried(server, folder):
    server.routes["/flaky"] = [status(503), serve(DATA)]
    dest = folder / "f.bin"
    download_file(server.url("/flaky"), dest, sha256=sha(DATA), retries=1, backoff=0.0,
                  timeout=5.0, progress=False)
    assert server.hits["/flaky"] == 2
    assert_only(folder, {"f.bin": DATA})


def test_timeout_falls_to_mirror(server, folder):
    server.routes["/slow"] = stall(3.0)
    server.routes["/mirror"] = serve(DATA)
    dest = folder / "f.bin"
    start = time.monotonic()
    download_file([server.url("/slow"), server.url("/mirror")], dest, retries=0, backoff=0.0,
                  timeout=0.5, progress=False)
    assert time.monotonic() - start < 2.5
    assert_only(folder, {"f.bin": DATA})


# --------------------------------------------------------------------------- checksums


def test_checksum_mismatch_raises(server, folder):
    server.routes["/f.bin"] = serve(DATA)
    dest = folder / "f.bin"
    wrong = sha(b"something else")
    with pytest.raises(DownloadError) as err:
        download_file(server.url("/f.bin"), dest, sha256=wrong, **FAST)
    msg = str(err.value)
    assert "checksum" in msg
    assert wrong in msg and sha(DATA) in msg
    assert_only(folder, {})


def test_checksum_mismatch_on_main_then_good_mirror(server, folder):
    server.routes["/bad"] = serve(b"corrupt" * 100)
    server.routes["/good"] = serve(DATA)
    download_file([server.url("/bad"), server.url("/good")], folder / "f.bin",
                  sha256=sha(DATA), **FAST)
    assert_only(folder, {"f.bin": DATA})


# --------------------------------------------------------------------------- no server


def test_no_server_names_url_and_dest(folder):
    url = f"http://127.0.0.1:{closed_port()}/weights/model.safetensors"
    dest = folder / "model.safetensors"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_file(url, dest, retries=1, backoff=0.0, timeout=2.0, progress=False)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert url in msg
    assert str(dest) in msg
    assert "model.safetensors" in msg
    assert "GPTLIB_HOME" in msg
    assert_only(folder, {})


# --------------------------------------------------------------------------- the cache


def test_cached_file_with_matching_checksum_needs_no_network(folder):
    dest = folder / "f.bin"
    atomic_write_bytes(dest, DATA)
    url = f"http://127.0.0.1:{closed_port()}/f.bin"  # would fail if it were used
    assert download_file(url, dest, sha256=sha(DATA), **FAST) == dest
    assert download_file(url, dest, **FAST) == dest  # no checksum: presence is enough
    assert_only(folder, {"f.bin": DATA})


def test_cached_file_with_matching_checksum_makes_no_request(server, folder):
    server.routes["/f.bin"] = serve(b"newer bytes")
    dest = folder / "f.bin"
    atomic_write_bytes(dest, DATA)
    download_file(server.url("/f.bin"), dest, sha256=sha(DATA), **FAST)
    assert server.total_hits == 0
    assert_only(folder, {"f.bin": DATA})


def test_cached_file_with_wrong_checksum_is_fetched_again(server, folder):
    server.routes["/f.bin"] = serve(DATA)
    dest = folder / "f.bin"
    atomic_write_bytes(dest, b"stale or damaged")
    download_file(server.url("/f.bin"), dest, sha256=sha(DATA), **FAST)
    assert server.hits["/f.bin"] == 1
    assert_only(folder, {"f.bin": DATA})


def test_damaged_cached_file_is_not_kept_when_refetch_fails(folder):
    dest = folder / "f.bin"
    atomic_write_bytes(dest, b"stale or damaged")
    with pytest.raises(DownloadError):
        download_file(f"http://127.0.0.1:{closed_port()}/f.bin", dest, sha256=sha(DATA), **FAST)
    assert_only(folder, {})


def test_other_files_in_folder_are_left_alone(server, folder):
    atomic_write_bytes(folder / "other.txt", b"keep me")
    server.routes["/short"] = cut_short(DATA, 10)
    with pytest.raises(DownloadError):
        download_file(server.url("/short"), folder / "f.bin", **FAST)
    assert_only(folder, {"other.txt": b"keep me"})


# --------------------------------------------------------------------------- helpers


def test_atomic_write_bytes(tmp_path):
    dest = tmp_path / "a" / "b.txt"
    assert atomic_write_bytes(dest, b"one") == dest
    atomic_write_bytes(dest, b"two")
    assert_only(dest.parent, {"b.txt": b"two"})


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home"
    monkeypatch.delenv("GPTLIB_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "gptlib"
