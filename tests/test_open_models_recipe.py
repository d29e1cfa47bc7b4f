"""The chapter's recipe on the open models (Qwen3, Llama 3.2; gptlib.models), through the same
doors as GPT-2: FinetuneConfig, run_finetune, the speed door, the memory check, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from gptlib.classifier import add_classification_head, count_parameters
from gptlib.finetune import FinetuneConfig, run_finetune
from gptlib.models import build_model
from gptlib.settings import SettingError

TINY = {"qwen3": "qwen3-tiny (test)", "llama3": "llama3.2-tiny (test)"}


def _cfg(model: str, small_tsv, tmp_path, **changes) -> FinetuneConfig:
    values = dict(model_size=model, weights="random", data=str(small_tsv), epochs=2, eval_freq=2, eval_iter=2,
                  output=str(tmp_path / "out"), figures=None, device="cpu")
    return FinetuneConfig(**{**values, **changes})


@pytest.mark.slow
@pytest.mark.parametrize("family", list(TINY))
@pytest.mark.parametrize("token, padding", [("last", "max_length"), ("last_real", "batch")])
def test_exact_speed_gives_the_plain_computations_numbers(family, token, padding, small_tsv, tmp_path,
                                                          one_thread):
    """The frozen part kept per message (gptlib.speed.reuse) changes nothing but the time."""
    runs = {speed: run_finetune(_cfg(TINY[family], small_tsv, tmp_path / speed, speed=speed, token=token,
                                     padding=padding), progress=False, verbose=False, save=False)
            for speed in ("book", "exact")}
    book, exact = runs["book"], runs["exact"]
    assert max(abs(a - b) for a, b in zip(book.train_losses, exact.train_losses)) < 1e-4
    assert max(abs(a - b) for a, b in zip(book.val_losses, exact.val_losses)) < 1e-4
    assert (book.train_accuracy, book.val_accuracy, book.test_accuracy) == (
        exact.train_accuracy, exact.val_accuracy, exact.test_accuracy)


@pytest.mark.slow
def test_fast_preset_runs_and_stays_close(small_tsv, tmp_path, one_thread):
    base = run_finetune(_cfg(TINY["qwen3"], small_tsv, tmp_path / "a", speed="exact", token="last_real",
                             padding="batch"), progress=False, verbose=False, save=False)
    fast = run_finetune(FinetuneConfig.preset("fast", **{k: v for k, v in vars(_cfg(
        TINY["qwen3"], small_tsv, tmp_path / "b")).items() if k not in ("speed", "token", "padding",
                                                                         "dropout_scope")}),
        progress=False, verbose=False, save=False)
    assert fast.config["speed"] == "fast" and fast.config["token"] == "last_real"
    assert max(abs(a - b) for a, b in zip(base.train_losses, fast.train_losses)) < 0.05  # bfloat16 kept


def test_the_frozen_part_is_computed_once_per_message(small_tsv, tmp_path, capsys, monkeypatch, gptlib_home,
                                                     one_thread):
    from gptlib import speed
    from gptlib.speed.store import default_store

    default_store().clear()  # an earlier run of this process must not have left the set

    seen = {}
    real_prepare = speed.prepare

    def spy(*args, **kwargs):
        prepared = real_prepare(*args, **kwargs)
        seen["runner"] = prepared.runner
        return prepared

    monkeypatch.setattr(speed, "prepare", spy)
    result = run_finetune(_cfg(TINY["llama3"], small_tsv, tmp_path, epochs=3), progress=False, save=False)
    runner = seen["runner"]
    messages = {tuple(r) for loader in result.loaders for batch, _ in loader for r in batch.tolist()}
    one_pass = sum(len(loader.dataset) for loader in result.loaders)
    # 3 epochs and every evaluation, yet each message's frozen part once (a message that is twice
    # in the data, in one batch, is computed twice)
    assert len(messages) <= runner.computed_rows <= one_pass
    out = capsys.readouterr().out
    assert "GPT-2's BPE stands in" in out and "kept per message" in out


def test_settings_that_cannot_work_on_an_open_model_are_refused():
    with pytest.raises(SettingError, match="weights: the preset 'qwen3-tiny \\(test\\)' has no published"):
        FinetuneConfig(model_size=TINY["qwen3"]).check()
    with pytest.raises(SettingError, match="drop_rate: .* has no dropout"):
        FinetuneConfig(model_size=TINY["qwen3"], weights="random", drop_rate=0.1).check()
    with pytest.raises(SettingError, match="causal_mask"):
        FinetuneConfig(model_size=TINY["llama3"], weights="random", causal_mask=False).check()
    FinetuneConfig(model_size="Qwen/Qwen3-0.6B").check()  # a repo id names the preset; weights exist
    assert FinetuneConfig(model_size="Qwen/Qwen3-0.6B").effective().model_size == "qwen3-0.6b"


@pytest.mark.parametrize("model, trainable", [("qwen3-0.6b", 15_734_018), ("llama3.2-1b", 60_827_650)])
def test_the_memory_check_counts_what_trains_as_the_model_does(model, trainable):
    from gptlib.speed.memory import estimate_run_memory

    with torch.device("meta"):
        clf = add_classification_head(build_model(model), trainable="last_block", inplace=True)
    assert count_parameters(clf, trainable_only=True) == trainable
    assert estimate_run_memory(model, "last_block", batch_size=8, tokens=120).trainable_params == trainable


def test_the_cli_trains_and_classifies_with_an_open_model(small_tsv, tmp_path, capsys, offline, one_thread):
    from gptlib.cli import main

    out = tmp_path / "run"
    assert main(["finetune", "--model", TINY["qwen3"], "--weights", "random", "--data", str(small_tsv),
                 "--epochs", "1", "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Test accuracy" in printed and "Memory: qwen3-tiny (test)" in printed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["model_size"] == TINY["qwen3"] and saved["tokenizer"] == "gpt2"
    assert main(["classify", str(out), "WIN a free prize now"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith("WIN a free prize now") and ("spam" in line.split("\t")[0])


def test_lora_on_an_open_model_trains_only_the_adapters(small_tsv, tmp_path, one_thread):
    result = run_finetune(_cfg(TINY["qwen3"], small_tsv, tmp_path, trainable="lora", lora_rank=4, epochs=1),
                          progress=False, verbose=False, save=False)
    trained = {name for name, p in result.model.named_parameters() if p.requires_grad}
    assert trained and all("lora" in name or name.startswith("out_head") for name in trained), sorted(trained)[:5]


def test_a_second_run_takes_the_frozen_part_from_the_store(small_tsv, tmp_path, capsys, gptlib_home, one_thread):
    """As for GPT-2: another learning rate, the same frozen weights and messages, so the set of
    frozen activations comes from the store, and the numbers are those of a run that computes it."""
    from gptlib.speed.store import default_store

    default_store().clear()
    first = run_finetune(_cfg(TINY["qwen3"], small_tsv, tmp_path / "a", token="last_real", padding="batch",
                              lr=1e-4), progress=False, save=False)
    assert "Frozen activations computed" in capsys.readouterr().out
    second = run_finetune(_cfg(TINY["qwen3"], small_tsv, tmp_path / "b", token="last_real", padding="batch",
                               lr=2e-4), progress=False, save=False)
    assert "Frozen activations taken from the store" in capsys.readouterr().out
    plain = run_finetune(_cfg(TINY["qwen3"], small_tsv, tmp_path / "c", token="last_real", padding="batch",
                              lr=2e-4, speed="book"), progress=False, verbose=False, save=False)
    assert max(abs(a - b) for a, b in zip(second.train_losses, plain.train_losses)) < 1e-4
    assert second.test_accuracy == plain.test_accuracy and first.train_losses != second.train_losses


def test_download_weights_takes_an_open_model(capsys, gptlib_home, offline):
    """`download weights --model NAME` routes an open model to its own files (config, weights,
    tokenizer); a test config with no released weights says so in one line, with the flag."""
    from gptlib.cli import main

    assert main(["download", "weights", "--model", TINY["qwen3"]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no released weights" in err and "--weights random" in err
