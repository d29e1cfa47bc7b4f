"""Shared fixtures: the real SMS data (skipped where absent), a small hand-written SMS file
written into train/validation/test CSVs, the tokenizer, a private GPTLIB_HOME, and a local
HTTP server for the download tests."""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from gptlib.data import map_labels, random_split, read_sms_spam, save_splits
from gptlib.tokenizer import get_tokenizer

REPO = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = REPO.parent / "shared" / "data" / "sms_spam_collection"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SMALL_TSV = FIXTURES / "sms_small.tsv"  # 60 made-up messages, 32 ham / 28 spam, raw format

Splits = namedtuple("Splits", "train val test")


@pytest.fixture
def gptlib_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty GPTLIB_HOME for one test; no GPTLIB_DATA_DIR from the caller's shell."""
    home = tmp_path / "gptlib_home"
    home.mkdir()
    monkeypatch.setenv("GPTLIB_HOME", str(home))
    monkeypatch.delenv("GPTLIB_DATA_DIR", raising=False)
    return home


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """../shared/data/sms_spam_collection next to the repo (the test skips where it is absent)."""
    if not (REAL_DATA_DIR / "SMSSpamCollection").is_file():
        pytest.skip(f"real SMS data not found at {REAL_DATA_DIR}")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def real_data_file(real_data_dir) -> Path:
    return real_data_dir / "SMSSpamCollection"


@pytest.fixture(scope="session")
def small_tsv() -> Path:
    return SMALL_TSV


@pytest.fixture(scope="session")
def tiny_csvs(tmp_path_factory) -> Splits:
    """train/validation/test CSVs (Label 0/1, Text) from the 60-line fixture: 42/6/12 rows."""
    df = map_labels(read_sms_spam(SMALL_TSV, strict=True))
    folder = tmp_path_factory.mktemp("tiny_csvs")
    return Splits(*save_splits(*random_split(df, 0.7, 0.1), folder=folder))


@pytest.fixture(scope="session")
def tokenizer():
    return get_tokenizer()


@pytest.fixture
def one_thread():
    """Run torch on one thread: on a shared 2-core machine this is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def serve_http() -> Iterator[Callable[..., int]]:
    """``serve_http(handle)`` serves GET requests on 127.0.0.1 with ``handle(request_handler)``
    and returns the port; every server started is shut down after the test."""
    running = []

    def start(handle: Callable[[BaseHTTPRequestHandler], None], protocol: str = "HTTP/1.0") -> int:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = protocol

            def log_message(self, *args):
                pass

            def do_GET(self):
                handle(self)

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((httpd, thread))
        return httpd.server_address[1]

    yield start
    for httpd, thread in running:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def offline(monkeypatch):
    """Only 127.0.0.1 is reachable (the mirror URLs must not reach the internet), and the
    download helper's pauses between retries take no time."""
    import socket

    import gptlib.support.download

    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise socket.gaierror(socket.EAI_NONAME, f"offline test: no lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    monkeypatch.setattr(gptlib.support.download.time, "sleep", lambda seconds: None)
