"""The lab keeps an offline reader offline: a book row applied from "try the book's" keeps the
profile's weights where pretrained weights are neither cached nor reachable, and says which
settings it changed; every error the lab shows is one line that speaks of its controls, never of
command-line flags. Whether the download host can be reached is decided by a name lookup the
tests replace (``gptlib.lab.checks.host_resolves``); no test opens a connection.
"""

from __future__ import annotations

import socket
import time
import urllib.error

import pytest

pytest.importorskip("ipywidgets")

from gptlib.lab import checks  # noqa: E402
from gptlib.lab.messages import failure_message, lab_words  # noqa: E402
from gptlib.lab.panel import ExperimentPanel  # noqa: E402
from gptlib.notebook import load_profile  # noqa: E402
from gptlib.support.download import DownloadError  # noqa: E402

FLAG = "--"


@pytest.fixture
def offline(monkeypatch):
    """No weights cached (a fresh GPTLIB_HOME and HF cache), no proxy, and no host resolves."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    asked = []
    monkeypatch.setattr(checks, "host_resolves", lambda host, wait=checks.RESOLVE_WAIT: asked.append(host) or False)
    return asked


@pytest.fixture
def panel(gptlib_home, tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    p = ExperimentPanel(load_profile("smoke"), output=tmp_path / "lab")
    yield p
    p.stop()
    assert p.wait(120), "a run did not end"


def _choose(panel: ExperimentPanel, key: str) -> None:
    panel.book_choice.value = key  # what picking the row in the menu does


def test_a_book_row_offline_keeps_random_weights_and_says_what_changed(panel, offline):
    before = panel.config()
    assert (before.model_size, before.weights, before.token) == ("gpt2-tiny (test)", "random", "last")
    _choose(panel, "last_real")
    cfg = panel.config()
    assert (cfg.model_size, cfg.weights, cfg.token) == ("gpt2-tiny (test)", "random", "last_real")
    assert offline == ["huggingface.co"]
    message = panel.last_message
    assert "token read last -> last_real" in message
    assert "Kept random weights (gpt2-tiny (test))" in message and "cannot be reached" in message
    assert "model " not in message.split("Kept")[0]  # the model was not changed, so not named as changed
    assert "gptlib-msg-warning" in panel.message.value
    assert panel.check()[0] == []
    assert panel.run(wait=True) and panel.last_error is None, panel.last_message
    assert panel.runs.iloc[-1]["token"] == "last_real"
    # the book's 'context' row on the profile's model: padding to its own context, not 1024 tokens
    _choose(panel, "context")
    assert panel.controls["padding"].value == "context" and panel.check()[0] == []
    assert panel.config().max_length == 256


def test_a_book_row_takes_pretrained_weights_where_they_can_be_had(panel, monkeypatch):
    monkeypatch.setattr(checks, "host_resolves", lambda host, wait=checks.RESOLVE_WAIT: True)
    _choose(panel, "last_real")
    cfg = panel.config()
    assert (cfg.model_size, cfg.weights, cfg.token) == ("gpt2-small (124M)", "pretrained", "last_real")
    assert "model gpt2-tiny (test) -> gpt2-small (124M)" in panel.last_message
    assert "weights random -> pretrained" in panel.last_message and "Kept" not in panel.last_message


def test_cached_weights_count_as_available_without_asking_the_network(panel, offline, gptlib_home):
    from gptlib.models.hf_weights import weights_file

    path = weights_file("gpt2-small (124M)")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not checked here")
    assert checks.pretrained_available("gpt2-small (124M)") == (True, "")
    _choose(panel, "first")
    assert panel.config().weights == "pretrained" and offline == []
    assert checks.pretrained_available("gpt2-tiny (test)")[0] is False


def test_the_menu_forgets_the_row_once_its_settings_change_by_hand(panel, offline):
    _choose(panel, "last_real")
    assert panel.book_key == "last_real"
    panel.set(epochs=3)  # not part of what the experiment is: still the row
    assert panel.book_choice.value == "last_real"
    panel.set(token="first")
    assert panel.book_choice.value == "" and panel.book_key == ""


def test_unreachable_pretrained_weights_are_named_before_run(panel, offline):
    panel.set(model_size="gpt2-small (124M)", weights="pretrained")
    problems, notes, _ = panel.check()
    assert any("cannot be reached" in n and "'weights'" in n and "random" in n for n in notes), notes
    assert FLAG not in panel.hints.value
    panel.set(model_size="gpt2-tiny (test)")  # no published weights: refused, in the lab's words
    problems = panel.check()[0]
    assert problems and "has no published weights" in problems[0] and FLAG not in problems[0]


def test_a_download_failure_is_one_line_in_the_labs_words(panel, monkeypatch):
    monkeypatch.setattr(checks, "host_resolves", lambda host, wait=checks.RESOLVE_WAIT: True)

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr("gptlib.support.download._fetch_once", no_network)
    panel.set(model_size="gpt2-small (124M)", weights="pretrained")
    assert panel.run(wait=True)
    assert isinstance(panel.last_error, DownloadError)  # the whole error is kept
    message = panel.last_message
    assert message.startswith("The run failed after ") and "\n" not in message and len(message) < 500
    assert "gpt2-small (124M)'s pretrained weights" in message and "'weights' setting" in message
    assert "does not resolve" in message
    assert FLAG not in message and "GPTLIB_PROFILE" not in message and "Traceback" not in message
    assert panel.status.value == "failed" and panel.runs.empty and not panel.running


def test_errors_name_the_labs_controls_not_flags():
    cases = {
        "No pretrained weights here? Run with --weights random, or GPTLIB_PROFILE=offline for the notebooks.":
            "No pretrained weights here? Run with 'weights' set to 'random' in the lab's settings.",
        "Use random weights for this preset (--weights random, or weights=\"random\").":
            "Use random weights for this preset ('weights' set to 'random' in the lab's settings).",
        "Choose --model-size \"gpt2-small (124M)\" and a smaller --batch-size":
            "Choose 'model' set to 'gpt2-small (124M)' in the lab's settings and a smaller the lab's "
            "'batch size' setting",
        "--trainable: Unknown trainable choice 'foo'": "the lab's 'what trains' setting: Unknown trainable choice 'foo'",
    }
    for text, expected in cases.items():
        assert lab_words(text) == expected
    assert lab_words("pass local_copy=... (the CLI's --data)") == "pass local_copy=... (the CLI's --data)"
    line = failure_message(RuntimeError("boom\n  in a deep place"), seconds=1.25)
    assert line == "The run failed after 1.2 s: RuntimeError: boom in a deep place"
    long = failure_message(ValueError("x" * 2000))
    assert len(long) < 450 and long.endswith("…") and long.startswith("The run failed: x")


def test_a_refused_run_says_not_run_in_the_status(panel):
    panel.set(batch_size=4000)
    assert not panel.run()
    assert panel.status.value == "not run" and panel.last_message.startswith("Not run:")


def test_a_slow_name_lookup_is_not_waited_on(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(3))
    checks._resolved.pop("slow.invalid", None)
    start = time.perf_counter()
    assert checks.host_resolves("slow.invalid", wait=0.2) is None
    assert time.perf_counter() - start < 1.5
