"""The experiment lab panel (gptlib.widgets): settings, runs in a thread, Stop, refusals, errors,
the runs table and its CSV, the book's bonus table, classifying a message.

Every run uses the smoke profile: the tiny random model and the 200-message made-up data file
shipped in the package (36 training messages, 4 steps of 8 per epoch), so a run takes about a
second once torch has warmed up.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error

import pandas as pd
import pytest

import gptlib.data
import gptlib.finetune

pytest.importorskip("ipywidgets")

from gptlib.finetune import FinetuneConfig  # noqa: E402
from gptlib.notebook import load_profile  # noqa: E402
from gptlib.widgets import (  # noqa: E402
    RUN_COLUMNS,
    ExperimentPanel,
    book_bonus_results,
    book_setting,
    svg_chart,
)

SMOKE_TRAIN = 36  # training messages in the smoke data's split
STEPS_PER_EPOCH = SMOKE_TRAIN // 8


@pytest.fixture
def panel(gptlib_home, tmp_path, one_thread):
    """A panel with the smoke profile's settings; its data splits go below tmp_path."""
    p = ExperimentPanel(load_profile("smoke"), output=tmp_path / "lab")
    yield p
    p.stop()
    assert p.wait(120), "a run did not end"


def _accuracies_ok(row: pd.Series) -> bool:
    return all(0.0 <= float(row[k]) <= 1.0 for k in ("train_acc", "val_acc", "test_acc"))


def test_importing_gptlib_does_not_import_ipywidgets():
    code = ("import sys, gptlib, gptlib.finetune, gptlib.train, gptlib.notebook; "
            "assert 'ipywidgets' not in sys.modules, 'ipywidgets was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_defaults_come_from_the_book_or_a_profile(gptlib_home):
    book = ExperimentPanel()
    c = book.controls
    assert (c["epochs"].value, c["lr"].value, c["weight_decay"].value, c["batch_size"].value) == (5, 5e-5, 0.1, 8)
    assert (c["trainable"].value, c["token"].value, c["padding"].value) == ("last_block", "last", "longest")
    assert (c["model_size"].value, c["weights"].value, c["speed"].value) == ("gpt2-small (124M)", "pretrained", "exact")
    cfg = book.config()
    assert (cfg.padding, cfg.max_length, cfg.train_limit, cfg.seed) == ("max_length", None, None, 123)

    smoke = ExperimentPanel(load_profile("smoke"))
    cfg = smoke.config()
    assert (cfg.model_size, cfg.weights, cfg.device, cfg.eval_freq) == ("gpt2-tiny (test)", "random", "cpu", 2)
    assert cfg.data is not None and cfg.data.endswith("sms_smoke.tsv")


@pytest.mark.parametrize("given, choice", [
    (dict(padding="max_length", max_length=None), "longest"),
    (dict(padding="batch", max_length=None), "batch"),
    (dict(padding="max_length", max_length=1024), "context"),
    (dict(padding="max_length", max_length=64), "fixed"),
])
def test_padding_choices_map_to_config(gptlib_home, given, choice):
    panel = ExperimentPanel(FinetuneConfig(**given))
    assert panel.controls["padding"].value == choice
    cfg = panel.config()
    assert (cfg.padding, cfg.max_length) == (given["padding"], given["max_length"])


@pytest.mark.parametrize("trainable, choice, n", [
    ("head", "head", None), ("last_block", "last_block", None), ("last_3_blocks", "last_n", 3), ("all", "all", None),
])
def test_trainable_choices_map_to_config(gptlib_home, trainable, choice, n):
    panel = ExperimentPanel(FinetuneConfig(trainable=trainable))
    assert panel.controls["trainable"].value == choice
    if n is not None:
        assert panel.controls["blocks"].value == n
    assert panel.config().trainable == trainable


def test_only_the_controls_that_do_not_apply_are_hidden(gptlib_home):
    panel = ExperimentPanel()
    panel.set(trainable="last_block", padding="longest")
    hidden = {name for name, c in panel.controls.items() if c.layout.display == "none"}
    assert hidden == {"blocks", "fixed_length"}
    panel.set(trainable="last_3_blocks", padding=64)
    assert all(c.layout.display != "none" for c in panel.controls.values())


def test_run_button_adds_a_row_and_draws_curves(panel):
    panel.set(epochs=2, lr=1e-4, weight_decay=0.05, drop_rate=0.1, trainable="last_2_blocks",
              token="last_real", seed=7)
    panel.run_button.click()  # what pressing Run does: starts a background thread
    assert panel.wait(120)
    assert panel.last_error is None, panel.last_message
    assert len(panel.runs) == 1
    assert list(panel.runs.columns) == list(RUN_COLUMNS)
    row = panel.runs.iloc[0]
    assert _accuracies_ok(row)
    assert (row["epochs"], row["lr"], row["weight_decay"], row["drop_rate"], row["seed"]) == (2, 1e-4, 0.05, 0.1, 7)
    assert (row["trainable"], row["token"], row["padding"], row["stopped_early"]) == (
        "last_2_blocks", "last_real", "longest", "no")
    assert row["examples_seen"] == 2 * STEPS_PER_EPOCH * 8
    assert row["best_val_epoch"] in (1, 2)
    assert row["train_val_gap"] == pytest.approx(row["train_acc"] - row["val_acc"])
    # the live curves were redrawn at each evaluation and epoch, with more points each time
    assert len(panel.redraws) >= 3
    assert panel.redraws == sorted(panel.redraws) and panel.redraws[-1] > panel.redraws[0]
    assert panel.curve_view.value.count('class="pt"') == panel.curve_points() == panel.redraws[-1]
    assert panel.progress.value == panel.progress.max == 2 * STEPS_PER_EPOCH
    assert "gptlib-runs" in panel.runs_html.value and "No runs yet" not in panel.runs_html.value
    # the smoke data file was read where it is, and the data step is gptlib's own again
    assert gptlib.finetune.download_and_unzip_spam_data is gptlib.data.download_and_unzip_spam_data
    # the run's model classifies a message
    probs = panel.classify("WINNER! Claim your free prize now, text WIN to 80082")
    assert set(probs) == {"not spam", "spam"} and sum(probs.values()) == pytest.approx(1.0)
    assert "%" in panel.classify_out.value and not panel.classify_button.disabled

    # a second run: the table keeps both, and the overlay can show both
    panel.set(epochs=1, token="first", padding="batch")
    assert panel.run(wait=True)
    assert list(panel.runs["run"]) == [1, 2]
    assert panel.runs.iloc[1]["padding"] == "batch" and pd.isna(panel.runs.iloc[1]["max_length"])
    panel.overlay_runs.value = (1, 2)
    assert panel.overlay_view.value.count('class="pt"') == 2 + 1  # epochs of run 1 + run 2
    panel.overlay_metric.value = "val_losses"
    assert panel.overlay_view.value.count('class="pt"') == sum(
        len(panel.histories[r]["val_losses"]) for r in (1, 2))


def test_stop_ends_a_run_early_and_keeps_a_usable_model(panel):
    epochs = 30
    panel.set(epochs=epochs)
    # slow each step down a little, so that the run is surely still going when Stop comes
    panel.event_hooks.append(lambda event: time.sleep(0.02) if event.kind == "step" else None)
    assert panel.run(wait=False)
    deadline = time.monotonic() + 120
    while panel.steps_done < 2 and panel.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert panel.running, "the run ended before it could be stopped"
    assert panel.stop()
    assert panel.wait(120)
    assert panel.last_error is None, panel.last_message
    row = panel.runs.iloc[-1]
    assert row["stopped_early"] == "yes"
    assert row["examples_seen"] < epochs * STEPS_PER_EPOCH * 8
    assert panel.steps_done < epochs * STEPS_PER_EPOCH
    assert _accuracies_ok(row)
    assert len(panel.histories[int(row["run"])]["val_losses"]) >= 1  # the curves so far are kept
    assert "stopped early" in panel.status.value
    assert not panel.run_button.disabled and panel.stop_button.disabled
    assert panel.classify("Are we still meeting at six?").keys() == {"not spam", "spam"}
    assert panel.stop() is False  # nothing left to stop


@pytest.mark.parametrize("settings, expected", [
    (dict(batch_size=64), "larger than the training set"),
    (dict(train_limit=4, batch_size=8), "larger than the training set"),
    (dict(padding=300), "longer than"),
    (dict(weights="pretrained"), "no published weights"),
    (dict(trainable="last_3_blocks"), "cannot train the last 3"),
    (dict(lr=0.0), "lr must be a positive number"),
])
def test_settings_that_cannot_work_are_refused(panel, settings, expected):
    panel.set(**settings)
    assert panel.run(wait=True) is False
    assert expected in panel.last_message and panel.message_level == "error"
    assert expected in panel.message.value
    assert panel.runs.empty and not panel.running


def test_model_context_padding_on_cpu_is_allowed_with_a_warning(panel):
    panel.set(model_size="gpt2-small (124M)", weights="random", padding="context")
    problems, notes, cfg = panel.check()
    assert problems == [] and cfg.max_length == 1024
    assert any("on a CPU" in n for n in notes)
    assert "on a CPU" in panel.hints.value


def test_an_error_in_a_run_is_shown_and_the_panel_stays_usable(panel, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something broke inside the run")

    monkeypatch.setattr("gptlib.finetune.run_finetune", broken)
    assert panel.run(wait=True)
    assert isinstance(panel.last_error, RuntimeError)
    assert "something broke inside the run" in panel.message.value and panel.message_level == "error"
    assert panel.status.value == "failed" and panel.runs.empty
    assert not panel.run_button.disabled and not panel.running

    monkeypatch.undo()
    assert panel.run(wait=True)
    assert panel.last_error is None and len(panel.runs) == 1


def test_missing_weights_without_network_show_the_download_error(panel, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr("gptlib.download._fetch_once", offline)
    panel.set(model_size="gpt2-small (124M)", weights="pretrained")
    assert panel.run(wait=True)
    assert type(panel.last_error).__name__ == "DownloadError"
    assert "DownloadError" in panel.last_message and "Could not download model.safetensors" in panel.last_message
    assert "GPTLIB_HOME" in panel.last_message
    assert panel.runs.empty and not panel.running


def test_export_csv_writes_every_run(panel, tmp_path):
    panel.set(epochs=1)
    assert panel.run(wait=True) and panel.run(wait=True)
    path = panel.export_csv(tmp_path / "out" / "runs.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == list(RUN_COLUMNS) and list(back["run"]) == [1, 2]
    assert back["test_acc"].tolist() == pytest.approx(panel.runs["test_acc"].astype(float).tolist())
    assert [p.name for p in path.parent.iterdir()] == ["runs.csv"]  # no temporary file left behind
    panel.csv_path.value = str(tmp_path / "button.csv")
    panel.export_button.click()
    assert len(pd.read_csv(tmp_path / "button.csv")) == 2 and "Wrote 2 run(s)" in panel.last_message


def test_book_bonus_table_and_settings(gptlib_home):
    book = book_bonus_results()
    assert len(book) == 15 and list(book.columns) == ["setting", "train_acc", "val_acc", "test_acc", "minutes"]
    assert book.loc["baseline", ["train_acc", "val_acc", "test_acc"]].tolist() == pytest.approx([0.9663, 0.9933, 0.95])
    assert book.loc["context", "test_acc"] == pytest.approx(0.7833)
    assert ((book[["train_acc", "val_acc", "test_acc"]] >= 0) & (book[["train_acc", "val_acc", "test_acc"]] <= 1)).all().all()
    assert book_setting("lora") is None

    panel = ExperimentPanel()
    panel.apply_book_setting("last2")
    assert panel.config().trainable == "last_2_blocks"
    panel.apply_book_setting("nopad")
    cfg = panel.config()
    assert (cfg.padding, cfg.batch_size, cfg.trainable) == ("batch", 1, "last_block")
    with pytest.raises(ValueError, match="needs code"):
        panel.apply_book_setting("no_mask")
    html = panel.comparison_html()
    assert "99.33%" in html and "No runs yet" in html


def test_svg_chart_skips_missing_points():
    svg = svg_chart([{"label": "a", "x": [0, 1, 2], "y": [0.5, float("nan"), None]},
                     {"label": "b", "x": [], "y": []}])
    assert svg.startswith("<svg") and svg.count('class="pt"') == 1
    assert re.search(r"<text[^>]*>a</text>", svg)
