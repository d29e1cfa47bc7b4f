"""The experiment lab panel (gptlib.lab.widgets): settings, runs in a thread, Stop, refusals, errors,
the runs table and its CSV, the book's bonus table, classifying a message.

Every run uses the smoke profile: the tiny random model and the 200-message made-up data file
shipped in the package (36 training messages, 4 steps of 8 per epoch), so a run takes about a
second once torch has warmed up.
"""

from __future__ import annotations

import dataclasses
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
from gptlib.lab.bonus import book_bonus_rows  # noqa: E402
from gptlib.lab.form import BOOK_RESET  # noqa: E402
from gptlib.lab.view import LORA_CONTROLS  # noqa: E402
from gptlib.lab.widgets import (  # noqa: E402
    RUN_COLUMNS,
    ExperimentPanel,
    book_bonus_results,
    book_setting,
    svg_chart,
)
from gptlib.notebook import load_profile  # noqa: E402
from gptlib.study.experiments import experiment  # noqa: E402

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
    assert panel.lora_box.layout.display == "none"  # LoRA's controls: in the layout, hidden
    assert panel.advanced.selected_index is None  # the advanced section starts collapsed
    panel.set(trainable="last_3_blocks", padding=64)
    assert all(c.layout.display != "none" for c in panel.controls.values())
    panel.set(trainable="lora")
    assert panel.lora_box.layout.display is None and panel.controls["blocks"].layout.display == "none"
    assert all(panel.controls[n] in panel.lora_box.children for n in LORA_CONTROLS)


def test_run_button_adds_a_row_and_draws_curves(panel):
    redraws = []  # points on the live curves after each evaluation and epoch (the panel subscribed first)
    panel.engine.subscribe(lambda e: redraws.append(panel.curve_view.value.count('class="pt"'))
                           if e.kind in ("eval", "epoch") else None)
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
    points = sum(len(panel.curves[k]) for k in ("train_losses", "val_losses", "train_accs", "val_accs"))
    assert len(redraws) >= 3
    assert redraws == sorted(redraws) and redraws[-1] > redraws[0]
    assert panel.curve_view.value.count('class="pt"') == points == redraws[-1]
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
    panel.engine.subscribe(lambda event: time.sleep(0.02) if event.kind == "step" else None)
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
    assert expected in panel.last_message and "gptlib-msg-error" in panel.message.value
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
    assert "something broke inside the run" in panel.message.value and "gptlib-msg-error" in panel.message.value
    assert panel.status.value == "failed" and panel.runs.empty
    assert not panel.run_button.disabled and not panel.running

    monkeypatch.undo()
    assert panel.run(wait=True)
    assert panel.last_error is None and len(panel.runs) == 1


def test_missing_weights_without_network_show_one_line_in_the_labs_words(panel, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr("gptlib.support.download._fetch_once", offline)
    panel.set(model_size="gpt2-small (124M)", weights="pretrained")
    assert panel.run(wait=True)
    assert type(panel.last_error).__name__ == "DownloadError"  # the whole error, for whoever wants it
    assert "Could not download model.safetensors" in str(panel.last_error)
    message = panel.last_message
    assert "pretrained weights are not in the cache and could not be downloaded" in message
    assert "'weights' setting" in message and "--weights" not in message and "\n" not in message
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
    assert len(book) == len(book_bonus_rows()) == 19
    assert list(book.columns) == ["setting", "train_acc", "val_acc", "test_acc", "minutes"]
    assert book.loc["baseline", ["train_acc", "val_acc", "test_acc"]].tolist() == pytest.approx([0.9663, 0.9933, 0.95])
    assert book.loc["context", "test_acc"] == pytest.approx(0.7833)
    assert ((book[["train_acc", "val_acc", "test_acc"]] >= 0) & (book[["train_acc", "val_acc", "test_acc"]] <= 1)).all().all()

    panel = ExperimentPanel()
    panel.apply_book_setting("last2")
    assert panel.config().trainable == "last_2_blocks"
    panel.apply_book_setting("nopad")
    cfg = panel.config()
    assert (cfg.padding, cfg.batch_size, cfg.trainable) == ("none", 1, "last_block")
    panel.apply_book_setting("no_mask")
    assert panel.config().causal_mask is False and panel.advanced.selected_index == 0  # opened to show it
    assert "causal mask off" in panel.advanced.titles[0]
    with pytest.raises(ValueError, match="No bonus experiment"):
        panel.apply_book_setting("nope")
    html = panel.comparison_html()
    assert "99.33%" in html and "No runs yet" in html


def test_every_book_experiment_can_be_applied(gptlib_home):
    """Each bonus row and appendix E's LoRA runs: "try the book's" sets the form so that its
    config is the book's baseline with the row's settings, and the panel can run it (or
    refuses it for memory alone: gpt2-xl with every layer trained needs over 30 GiB)."""
    rows = {row["key"]: row for row in book_bonus_rows()}
    panel, other = ExperimentPanel(), ExperimentPanel()
    assert {v for _, v in panel.book_choice.options} >= {*rows, "appendix_e", "appendix_e_print"}
    book = FinetuneConfig()
    for key in [*rows, "appendix_e", "appendix_e_print", "baseline"]:  # the last: LoRA and the rest undone
        settings = dict(rows[key]["settings"] if key in rows else experiment(key).settings)
        before = panel.config()
        panel.apply_book_setting(key)
        expected = dataclasses.replace(before, **{**{n: getattr(book, n) for n in BOOK_RESET}, **settings})
        assert panel.config() == expected, key
        if key in rows:  # the same settings as the lab spells them (gptlib.lab.book_setting)
            other.load_config(before)
            other.set(**{n: getattr(book, n) for n in BOOK_RESET})
            other.set(**book_setting(key))
            assert other.config() == expected, key
        problems = panel.check()[0]
        assert all(p.startswith("Memory:") for p in problems), (key, problems)
        if settings.get("trainable") == "lora":
            assert panel.lora_box.layout.display is None, key
    assert panel.lora_box.layout.display == "none" and panel.config().causal_mask is True
    # from the menu, as a click does: the settings, and a message naming them
    panel.book_choice.value = "appendix_e"
    cfg = panel.config()
    assert (cfg.trainable, cfg.lora_scaling, cfg.lora_head, cfg.lr) == ("lora", "alpha/rank", "adapter", 8e-4)
    assert "appendix E" in panel.last_message and "alpha/rank" in panel.last_message


NEW_SETTINGS = dict(
    model_size="gpt2-tiny (test)", weights="random", epochs=2, lr=3e-4, weight_decay=0.02, drop_rate=0.1,
    batch_size=1, trainable="lora", token="mean_padded", padding="none", max_length=None, seed=5, eval_freq=3,
    eval_iter=2, train_limit=20, speed="book", dropout_scope="trainable", causal_mask=False,
    accumulation_steps=4, ignore_index=50256, lora_rank=4, lora_alpha=8.0, lora_scaling="alpha/rank",
    lora_head="full", lora_merged=True, device="cpu", output="runs/elsewhere", figures=None,
)


@pytest.mark.parametrize("settings", [
    NEW_SETTINGS,
    dict(trainable="last_3_blocks", token="mean", padding="max_length", max_length=64, accumulation_steps=8,
         batch_size=1, lora_scaling="alpha/rank", lora_merged=True),
    dict(trainable="head", token="last_real", padding="batch", ignore_index=0, causal_mask=False),
    dict(trainable="all", padding="max_length", max_length=1024, lora_head="full", lora_alpha=0.5),
], ids=["lora-nopad-nomask", "last3-fixed-accum", "head-batch", "all-context"])
def test_every_setting_round_trips_through_the_form(gptlib_home, settings):
    cfg = FinetuneConfig(**settings)
    panel = ExperimentPanel()
    panel.load_config(cfg)
    assert panel.config() == cfg
    # set() takes the same names and values, every field of FinetuneConfig at once
    other = ExperimentPanel()
    other.set(**dataclasses.asdict(cfg))
    assert other.config() == cfg
    assert (other.lora_box.layout.display is None) == (cfg.trainable == "lora")


def test_lora_token_and_padding_controls_say_what_they_do(gptlib_home):
    panel = ExperimentPanel()
    labels = {value: label for label, value in panel.controls["token"].options}
    assert "pads included" in labels["mean_padded"] and "real tokens" in labels["mean"]
    assert {value for _, value in panel.controls["trainable"].options} >= {"lora"}
    panel.set(trainable="lora")
    assert "scale = alpha = 16" in panel.lora_note.value and "printed book" in panel.lora_note.value
    panel.set(lora_scaling="alpha/rank", lora_rank=8)
    assert "scale = alpha/rank = 16/8 = 2" in panel.lora_note.value and "appendix E" in panel.lora_note.value
    notes = panel.check()[1]
    assert any("Speed 'exact' cannot reuse" in n and "LoRA" in n for n in notes), notes
    assert "book&#x27;s computation runs" in panel.hints.value
    # no padding: one message per batch, set for you; a larger batch is refused, saying why
    panel.set(trainable="last_block", batch_size=8, padding="none")
    assert panel.controls["batch_size"].value == 1 and panel.config().padding == "none"
    panel.set(batch_size=4)
    problems = panel.check()[0]
    assert any("set batch_size 1" in p for p in problems), problems
    # the advanced settings: collapsed, and the title says what is changed
    assert panel.advanced.selected_index is None
    panel.set(batch_size=1, accumulation_steps=8, causal_mask=False)
    assert "accumulation steps 8" in panel.advanced.titles[0] and "causal mask off" in panel.advanced.titles[0]
    assert "optimizer updates, each of 8 messages" in panel.hints.value
    assert any("causal mask is off" in n for n in panel.check()[1])


def test_a_run_that_cannot_fit_in_memory_is_refused(gptlib_home, monkeypatch):
    monkeypatch.setattr("gptlib.lab.checks.available_bytes", lambda device: 8 * 2**30)
    panel = ExperimentPanel()
    assert re.search(r"Memory: needs about [\d.,]+ MiB; 8\.0 GiB free on", panel.hints.value), panel.hints.value
    panel.apply_book_setting("xl_all")
    problems = panel.check()[0]
    assert any(p.startswith("Memory: gpt2-xl") and "8.0 GiB free" in p for p in problems), problems
    assert panel.run() is False and "needs about" in panel.last_message and "gptlib-msg-error" in panel.message.value
    assert "&#10007; Memory" in panel.hints.value
    panel.set(trainable="lora", batch_size=1)  # LoRA, one message a step: it fits
    assert panel.check()[0] == [] and "Memory: needs about" in panel.hints.value


def test_a_lora_run_from_the_book_row(panel):
    panel.apply_book_setting("lora")
    panel.set(model_size="gpt2-tiny (test)", weights="random", lora_rank=4)
    assert panel.run(wait=True), panel.last_message
    assert panel.last_error is None, panel.last_message
    row = panel.runs.iloc[-1]
    assert (row["trainable"], row["lora_rank"], row["lora_head"], row["lora_scaling"]) == ("lora", 4, "full", "alpha")
    assert _accuracies_ok(row)
    assert "r4 a16 alpha, head full" in panel.runs_html.value
    assert panel.classify("Free entry! Text WIN now").keys() == {"not spam", "spam"}


def test_svg_chart_skips_missing_points():
    svg = svg_chart([{"label": "a", "x": [0, 1, 2], "y": [0.5, float("nan"), None]},
                     {"label": "b", "x": [], "y": []}])
    assert svg.startswith("<svg") and svg.count('class="pt"') == 1
    assert re.search(r"<text[^>]*>a</text>", svg)


def test_choosing_fast_by_hand_takes_its_preset_in_the_controls(gptlib_home, tmp_path):
    """Speed 'fast' chosen in the panel shows its preset's token, padding and dropout scope in
    their controls and says so; settings given by name are taken as they are."""
    p = ExperimentPanel(load_profile("smoke"), output=tmp_path / "lab")
    p.controls["speed"].value = "fast"
    cfg = p.config()
    assert (cfg.speed, cfg.token, cfg.padding, cfg.dropout_scope) == ("fast", "last_real", "batch", "trainable")
    assert "takes its preset" in p.message.value
    p.set(speed="exact")
    p.set(speed="fast", token="first")
    assert (p.config().token, p.config().padding) == ("first", "batch")


def test_the_model_menu_offers_the_open_models_and_runs_one(panel):
    """Qwen3 and Llama 3.2 are in the lab's model menu (made from the setting's choices), and a
    run of one goes through the same engine, table and curves."""
    options = {value for _, value in panel.controls["model_size"].options} if isinstance(
        panel.controls["model_size"].options[0], tuple) else set(panel.controls["model_size"].options)
    assert {"qwen3-0.6b", "llama3.2-1b", "qwen3-tiny (test)"} <= options
    panel.set(model_size="qwen3-0.6b", weights="random")
    problems, _, cfg = panel.check()
    assert problems == [] and "2.5 GiB" in panel.hints.value  # the memory line knows its shape
    panel.set(model_size="qwen3-tiny (test)", weights="random", epochs=1)
    assert panel.run(wait=True), panel.last_message
    row = panel.runs.iloc[-1]
    assert row["model_size"] == "qwen3-tiny (test)" and _accuracies_ok(row)
