"""The lab without widgets: the run engine (seeds, groups, summary, Stop, CSV), the noise
arithmetic, the settings record the CLI and the lab are made from, charts and tables."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time

import pandas as pd
import pytest

from gptlib.finetune import FinetuneConfig
from gptlib.lab import RUN_COLUMNS, RunEngine, book_bonus_results
from gptlib.lab.charts import svg_chart
from gptlib.lab.tables import runs_columns, runs_html
from gptlib.settings import parse_setting, setting_fields, table_settings
from gptlib.support.noise import binomial_halfwidth, compare_with_book, summarize


@pytest.fixture
def engine(small_tsv, tmp_path, gptlib_home, one_thread):
    cfg = FinetuneConfig(model_size="gpt2-tiny (test)", weights="random", data=str(small_tsv), epochs=1,
                         eval_freq=2, output=str(tmp_path / "lab"), figures=None, device="cpu")
    e = RunEngine(cfg)
    yield e
    e.stop()
    assert e.wait(120)


def test_seeds_make_one_group_with_a_summary(engine):
    events = []
    engine.subscribe(lambda ev: events.append(ev.kind))
    assert engine.start(engine.base, seeds=3, wait=True)
    assert engine.last_error is None
    runs = engine.runs
    assert list(runs.columns) == list(RUN_COLUMNS) and list(runs["run"]) == [1, 2, 3]
    assert list(runs["seed"]) == [123, 124, 125] and set(runs["group"]) == {1}
    assert runs.iloc[0]["train_limit"] == "all"
    assert events.count("started") == 3 and events.count("finished") == 3 and events[-1] == "idle"
    summary = engine.summary()
    assert len(summary) == 1 and summary.iloc[0]["seeds"] == 3
    tests = runs["test_acc"].astype(float)
    assert summary.iloc[0]["test_mean"] == pytest.approx(tests.mean())
    assert summary.iloc[0]["test_low"] <= tests.mean() <= summary.iloc[0]["test_high"]
    # another setting is another group
    assert engine.start(dataclasses.replace(engine.base, lr=1e-4), wait=True)
    assert engine.runs.iloc[-1]["group"] == 2 and engine.varying_settings() == ["lr", "seed"]
    sentence = engine.compare_with_book(1, "baseline")
    assert "3 seed(s)" in sentence and ("within noise" in sentence or "more than noise" in sentence)
    with pytest.raises(ValueError, match="No bonus experiment"):
        engine.compare_with_book(1, "nope")


def test_stop_skips_the_remaining_seeds(engine):
    engine.subscribe(lambda ev: time.sleep(0.05) if ev.kind == "step" else None)
    cfg = dataclasses.replace(engine.base, epochs=20)
    assert engine.start(cfg, seeds=3)
    deadline = time.monotonic() + 120
    while engine.steps_done < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.start(cfg) is False  # one at a time
    assert engine.stop() and engine.wait(120)
    assert len(engine.runs) == 1 and engine.runs.iloc[0]["stopped_early"] == "yes"


def test_a_failing_run_is_reported_and_ends_the_seeds(engine, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr("gptlib.finetune.run_finetune", broken)
    failures = []
    engine.subscribe(lambda ev: failures.append(ev.message) if ev.kind == "failed" else None)
    assert engine.start(engine.base, seeds=2, wait=True)
    assert len(failures) == 1 and "broken on purpose" in failures[0] and engine.runs.empty


def test_export_csv_is_atomic(engine, tmp_path):
    assert engine.start(engine.base, wait=True)
    path = engine.export_csv(tmp_path / "x" / "runs.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == list(RUN_COLUMNS) and [p.name for p in path.parent.iterdir()] == ["runs.csv"]


def test_noise_arithmetic():
    assert binomial_halfwidth(0.95, 300) == pytest.approx(0.02516, abs=1e-4)  # the book's +-2.5 points (Wilson)
    one = summarize([0.95], 300)
    assert one["std"] == 0 and one["high"] - one["mean"] == pytest.approx(binomial_halfwidth(0.95, 300))
    three = summarize([0.93, 0.95, 0.97], 300)
    assert three["std"] == pytest.approx(0.02) and three["halfwidth"] > one["halfwidth"]
    assert compare_with_book([0.955], 300, 0.95)["within_noise"]
    far = compare_with_book([0.75, 0.76], 300, 0.95)
    assert not far["within_noise"] and "more than noise" in far["verdict"]
    with pytest.raises(ValueError):
        summarize([], 300)


def test_every_setting_has_a_flag_and_a_column_choice():
    from gptlib.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["finetune"]
    flags = {a.dest for a in sub._actions}
    assert {f.name for f in setting_fields()} <= flags
    assert "output" not in table_settings() and "lr" in table_settings() and "dropout_scope" in table_settings()
    assert parse_setting("max_length", "none") is None and parse_setting("trainable", "3") == 3
    with pytest.raises(ValueError, match="lr takes a number"):
        parse_setting("lr", "fast")


@pytest.mark.parametrize("argv, expected", [
    (["--train-limit", "-5"], "train_limit must be at least 1"),
    (["--train-limit", "0"], "train_limit must be at least 1"),
    (["--token", "middle"], "token must be one of"),
    (["--epochs", "two"], "epochs takes an integer"),
])
def test_bad_flags_end_in_one_line(argv, expected, gptlib_home):
    proc = subprocess.run([sys.executable, "-m", "gptlib", "finetune", *argv], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr


def test_a_single_point_shows_as_a_marker_on_a_sensible_axis():
    svg = svg_chart([{"label": "val", "x": [0], "y": [0.0]}])
    assert svg.count('class="pt"') == 1 and 'r="4"' in svg
    ticks = [float(t.replace(",", "")) for t in re.findall(r'text-anchor="(?:end|middle)">(-?[\d.,e+-]+)<', svg)]
    assert ticks and min(ticks) >= 0  # neither axis reads below zero for a loss at step 0


def test_the_runs_table_shows_what_differs(engine):
    engine.start(engine.base, wait=True)
    engine.start(dataclasses.replace(engine.base, lr=2e-4), wait=True)
    shown = runs_columns(engine.runs, engine.varying_settings())
    assert "lr" in shown and "weight_decay" not in shown and "test_acc" in shown
    every = runs_columns(engine.runs, [], every=True)  # LoRA's five settings show as one column
    assert len(every) == len(RUN_COLUMNS) - 4 and "lora" in every and "lora_rank" not in every
    html = runs_html(engine.runs, engine.varying_settings())
    assert "gptlib-table-box" in html and ">test<" in html and ">lr<" in html


def test_the_book_table_is_a_data_file():
    book = book_bonus_results()
    assert len(book) == 19 and book.loc["last2", "test_acc"] == pytest.approx(0.9833)


def test_lora_and_the_rare_settings_run_through_the_engine(engine):
    """A LoRA run on the tiny model, then one with no causal mask, no padding (batch 1), 2
    accumulation steps and target 50256 ignored: both complete, and the table shows them."""
    from gptlib.lora import lora_layers

    lora = dataclasses.replace(engine.base, trainable="lora", lora_rank=4, lora_alpha=8.0, lora_head="full",
                               train_limit=16)
    assert engine.start(lora, wait=True) and engine.last_error is None, engine.last_error
    row = engine.runs.iloc[0]
    assert (row["trainable"], row["lora_rank"], row["lora_alpha"], row["lora_head"]) == ("lora", 4, 8.0, "full")
    assert all(0 <= float(row[k]) <= 1 for k in ("train_acc", "val_acc", "test_acc"))
    assert row["examples_seen"] == 16 and lora_layers(engine.model)
    assert engine.result.config["trainable"] == "lora"
    html = runs_html(engine.runs, engine.varying_settings())  # one run: its main settings and LoRA's
    assert ">LoRA<" in html and "r4 a8 alpha, head full" in html and ">causal mask<" not in html

    rare = dataclasses.replace(engine.base, causal_mask=False, padding="none", batch_size=1, accumulation_steps=2,
                               ignore_index=50256, train_limit=6)
    assert engine.start(rare, wait=True) and engine.last_error is None, engine.last_error
    row = engine.runs.iloc[1]
    assert (row["padding"], row["batch_size"], row["causal_mask"]) == ("none", 1, False)
    assert (row["accumulation_steps"], row["ignore_index"], row["examples_seen"]) == (2, 50256, 6)
    assert pd.isna(row["max_length"]) and pd.isna(row["lora_rank"])  # LoRA's settings: blank without it
    shown = runs_columns(engine.runs, engine.varying_settings())
    assert {"trainable", "padding", "causal_mask", "accumulation_steps", "ignore_index", "lora"} <= set(shown)
    assert not any(c.startswith("lora_") for c in shown)
    assert runs_columns(engine.runs.iloc[1:], [])[-4:] == ["causal_mask", "accumulation_steps", "ignore_index",
                                                           "stopped_early"]
    assert "appendix E" in engine.compare_with_book(1, "appendix_e")  # appendix E's LoRA run compares too


def test_finetune_with_seeds_from_the_command_line(small_tsv, tmp_path, gptlib_home):
    cmd = [sys.executable, "-m", "gptlib", "finetune", "--model-size", "gpt2-tiny (test)", "--weights", "random",
           "--data", str(small_tsv), "--epochs", "1", "--seeds", "2", "--output", str(tmp_path / "out"),
           "--figures", "none", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = re.search(r"test accuracy over 2 seeds \(([\d.]+)%, ([\d.]+)%\): mean ([\d.]+)%", proc.stdout)
    assert summary, proc.stdout
    a, b, mean = map(float, summary.groups())
    assert mean == pytest.approx((a + b) / 2, abs=0.01)
    for seed in (123, 124):
        assert (tmp_path / "out" / f"seed-{seed}" / "metrics.json").is_file()


def test_stopped_runs_stay_out_of_the_summary(engine):
    engine.start(engine.base, wait=True)
    engine.start(engine.base, wait=True)
    engine.runs.loc[0, "stopped_early"] = "yes"  # as if the first had been stopped
    summary = engine.summary()
    assert summary.iloc[0]["seeds"] == 1 and summary.iloc[0]["runs"] == "2"


def test_a_failing_subscriber_does_not_end_the_runs(engine, capsys):
    def broken(event):
        if event.kind == "epoch":
            raise RuntimeError("display bug")

    engine.subscribe(broken)
    assert engine.start(engine.base, seeds=2, wait=True)
    assert len(engine.runs) == 2 and "display bug" in capsys.readouterr().err
