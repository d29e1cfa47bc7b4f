"""gptlib.study.experiments (the book's experiments in one registry), the lab's bonus table read from
it, and ``python -m gptlib experiments list | run | table``."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest

from gptlib.cli import _metavar, main
from gptlib.lab.bonus import (
    book_bonus_results,
    book_bonus_rows,
    book_setting,
    book_setting_name,
    panel_can_set,
    panel_settings,
)
from gptlib.lab.controls import PADDING_OPTIONS
from gptlib.model import get_config, resolve_preset
from gptlib.study.experiments import (
    Experiment,
    UnknownExperimentError,
    compare,
    experiment,
    experiments,
    read_runs,
)
from gptlib.support.noise import compare_with_book

FACTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "chapter6-book-facts.md"
TINY = "gpt2-tiny (test)"
# the panel's spelling of no padding: its own choice "none" where it has one, else per-batch padding
NO_PADDING = "none" if "none" in {v for _, v in PADDING_OPTIONS} else "batch"
OLD_KEYS = ("baseline", "first", "head", "last2", "all", "medium", "large", "xl", "random", "lora", "context",
            "nopad", "last_real", "no_mask", "mean_pooled")


def _main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses
        return int(exc.code)


# =========================================================================== the registry


def test_registry_holds_every_experiment_of_the_chapter():
    rows = experiments()
    keys = [e.key for e in rows]
    assert len(keys) == len(set(keys)) == 27
    bonus = experiments("bonus")
    assert [e.number for e in bonus] == list(range(1, 20))
    assert [e.key for e in experiments("exercise")] == ["ex6.1", "ex6.2", "ex6.3"]
    assert [e.key for e in experiments("appendix E")] == ["appendix_e", "appendix_e_print"]
    assert [e.key for e in experiments("chapter")] == ["chapter"]
    assert [e.key for e in experiments("open models")] == ["qwen3", "llama3"]
    assert all(e.book() == {"train": None, "val": None, "test": None} for e in experiments("open models"))
    assert set(OLD_KEYS) <= set(keys)
    assert all(isinstance(e, Experiment) and e.description for e in rows)
    assert all(e.number is None for e in rows if e.source != "bonus")
    with pytest.raises(ValueError, match="source"):
        experiments("blog")


@pytest.mark.parametrize("key", [e.key for e in experiments()])
def test_every_row_has_settings_that_pass_check(key):
    exp = experiment(key)
    cfg = exp.config()
    cfg.check()
    for name, value in exp.settings.items():
        assert getattr(cfg, name) == value and type(getattr(cfg, name)) is type(value)
    # on the tiny model, as the tests run them (its context is 256, so pad-to-context rows pad to 256)
    exp.config(model_size=TINY, weights="random", **({"max_length": 256} if cfg.max_length else {})).check()


def test_bonus_numbers_equal_the_book():
    assert (experiment("baseline").train, experiment("baseline").val, experiment("baseline").test) == \
        (96.63, 99.33, 95.00)
    assert experiment("xl_all").test == 98.67 and experiment("xl_all").minutes == 8.12
    assert (experiment("nopad_accum").train, experiment("nopad_accum").test) == (99.33, 98.33)
    assert experiment("mean_pooled").settings == {"token": "mean_padded"}
    assert experiment("no_mask").settings == {"causal_mask": False}
    assert experiment("ignore_index").settings == {"ignore_index": 50256}
    assert dict(experiment("xl_lora").settings) == {"model_size": "gpt2-xl (1558M)", "trainable": "lora",
                                                    "lora_rank": 16, "lora_alpha": 8.0, "lora_scaling": "alpha",
                                                    "lora_head": "full"}
    assert (experiment("chapter").train, experiment("chapter").val, experiment("chapter").test) == \
        (97.21, 97.32, 95.67) and experiment("chapter").settings == {}
    notebook, printed = experiment("appendix_e"), experiment("appendix_e_print")
    assert (notebook.train, notebook.val, notebook.test) == (99.81, 97.99, 96.67)
    assert notebook.config().lora_scaling == "alpha/rank" and notebook.config().lr == 8e-4
    assert (printed.train, printed.val, printed.test) == (100.00, 96.64, 97.33)
    assert printed.config().lora_scaling == "alpha" and printed.config().lr == 5e-5


def test_bonus_numbers_equal_the_book_facts_file():
    if not FACTS.is_file():
        pytest.skip(f"{FACTS} not found")
    rows = re.findall(r"^\| (\d+) \| .*? \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) min \|$",
                      FACTS.read_text(encoding="utf-8"), flags=re.M)
    assert len(rows) == 19
    by_number = {e.number: e for e in experiments("bonus")}
    for number, train, val, test, minutes in rows:
        exp = by_number[int(number)]
        assert (exp.train, exp.val, exp.test, exp.minutes) == tuple(map(float, (train, val, test, minutes))), exp.key


def test_exercises_are_bonus_rows_of_the_bonus_split():
    for key in ("ex6.1", "ex6.2", "ex6.3"):
        ex = experiment(key)
        same = experiment(ex.same_as)
        assert ex.test == same.test and ex.settings == same.settings
        assert ex.train is None and ex.val is None and ex.other_split
    assert not experiment("chapter").other_split and not experiment("appendix_e").other_split


def test_unknown_key_and_overrides():
    with pytest.raises(ValueError, match="choose one of: chapter, ex6.1") as info:
        experiment("lora2")
    assert isinstance(info.value, KeyError) and isinstance(info.value, UnknownExperimentError)
    assert "'lora2'" in str(info.value) and not str(info.value).startswith('"')
    cfg = experiment("lora").config(epochs=1, model_size=TINY)
    assert (cfg.epochs, cfg.trainable, cfg.lora_head, cfg.model_size) == (1, "lora", "full", TINY)
    assert experiment("lora").config().epochs == 5  # the registry is not changed by overrides
    with pytest.raises(ValueError, match="Unknown setting"):
        experiment("first").config(epoch=1)
    with pytest.raises(TypeError):
        experiment("first").settings["token"] = "last"  # read-only


def test_flags_round_trip_through_the_finetune_parser():
    from gptlib.cli import build_parser

    for exp in experiments():
        args = build_parser().parse_args(["finetune", *shlex.split(exp.flags())])
        for name, value in exp.settings.items():
            assert getattr(args, name) == value, (exp.key, name)
    assert experiment("no_mask").flags() == "--causal-mask false"
    assert experiment("xl").flags() == "--model-size 'gpt2-xl (1558M)'"
    assert _metavar({"parse": "bool"}, None) == "true|false"


# =========================================================================== the lab's bonus table


def test_lab_bonus_table_reads_the_registry():
    book = book_bonus_results()
    assert len(book) == 19 and list(book.columns) == ["setting", "train_acc", "val_acc", "test_acc", "minutes"]
    assert list(book.index) == [e.key for e in experiments("bonus")]
    assert book.loc["last2", "test_acc"] == pytest.approx(0.9833)
    for key in book.index:
        assert isinstance(book_setting(key), dict) and book_setting_name(key) == experiment(key).description
    assert book_setting("baseline") == {}
    assert book_setting("context") == {"padding": "context"}
    assert book_setting("nopad") == {"batch_size": 1, "padding": NO_PADDING}
    assert book_setting("lora")["trainable"] == "lora"
    with pytest.raises(KeyError, match="No bonus experiment"):
        book_setting("ex6.1")
    rows = {r["key"]: r for r in book_bonus_rows()}
    assert rows["last2"]["panel_settings"] == {"trainable": "last_2_blocks"}
    assert rows["no_mask"]["settings"] == {"causal_mask": False}
    for key, row in rows.items():  # None only where the panel lacks a control for a setting (yet)
        assert (row["panel_settings"] is None) == (not panel_can_set(book_setting(key))), key
    for key in ("baseline", "first", "head", "last2", "all", "xl", "random", "context", "nopad", "last_real"):
        assert rows[key]["panel_settings"] == book_setting(key), key
    assert not panel_can_set({"no_such_setting": 1}) and not panel_can_set({"token": "middle"})


def test_panel_settings_from_finetune_settings():
    context = get_config(resolve_preset("gpt2-small"))["context_length"]
    assert panel_settings({"max_length": context}) == {"padding": "context"}
    assert panel_settings({"max_length": 200, "token": "first"}) == {"token": "first", "padding": 200}
    assert panel_settings({"model_size": TINY, "max_length": 256})["padding"] == "context"
    assert panel_settings({"padding": "max_length"}) == {"padding": "longest"}
    assert panel_settings({"padding": "none", "batch_size": 1}) == {"batch_size": 1, "padding": NO_PADDING}
    assert panel_settings({"padding": "batch"}) == {"padding": "batch"}


# =========================================================================== the command line


def test_cli_list_prints_every_experiment(capsys):
    assert _main(["experiments", "list"]) == 0
    out = capsys.readouterr().out
    for exp in experiments():
        assert re.search(rf"^{re.escape(exp.key)}\b", out, flags=re.M), exp.key
        if exp.settings:
            assert exp.flags() in out
    assert "--trainable lora --lora-rank 16 --lora-alpha 16 --lora-scaling alpha --lora-head full" in out
    assert "96.63" in out and "78.33" in out and "bonus script's own split" in out


def _metrics(key: str, train: float, val: float, test: float, n: int = 300, seed: int = 123) -> dict:
    """A metrics.json as run_finetune writes it (FinetuneResult.to_json)."""
    config = asdict(experiment(key).config(seed=seed).effective())
    return {"config": config, "train_losses": [0.7, 0.3], "val_losses": [0.7, 0.35], "train_accs": [train],
            "val_accs": [val], "examples_seen": 1040, "train_accuracy": train, "val_accuracy": val,
            "test_accuracy": test, "test_metrics": {"accuracy": test, "n": n, "confusion": [[1, 0], [0, 1]]},
            "max_length": 120, "trainable": "trainable 7,090,946", "seconds": 12.5,
            "files": {"metrics": "metrics.json"}}


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")


def test_cli_table_compares_runs_with_the_book(tmp_path, capsys):
    runs = tmp_path / "runs"
    _write(runs / "first" / "metrics.json", _metrics("first", 0.80, 0.82, 0.76))
    _write(runs / "last2" / "metrics.json", _metrics("last2", 0.90, 0.90, 0.80))
    for seed, test in ((123, 0.96), (124, 0.97)):
        _write(runs / "chapter" / f"seed-{seed}" / "metrics.json", _metrics("chapter", 0.97, 0.97, test, seed=seed))
    _write(runs / "head" / "metrics.json", "{not json")
    _write(runs / "all" / "metrics.json", {"train_accuracy": 0.9})
    _write(runs / "mystery" / "metrics.json", _metrics("first", 0.8, 0.8, 0.8))
    assert _main(["experiments", "table", "--runs", str(runs)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = {line.split()[0]: line for line in captured.out.splitlines() if line.strip()}
    first = lines["first"]
    assert "78.46" in first and "80.00" in first and "76.00" in first and "+1.00" in first
    expected = compare_with_book([0.76], 300, 0.75)
    assert expected["within_noise"] and f"yes (+-{100 * expected['band']:.2f})" in first
    assert "NO (" in lines["last2"] and "-18.33" in lines["last2"]
    chapter = lines["chapter"]
    assert "96.50" in chapter and "+0.83" in chapter and re.search(r"\|\s+2\s+yes", chapter) and "spread" in chapter
    assert lines["head"].endswith("not run") and lines["all"].endswith("not run")
    assert lines["xl_lora"].endswith("not run") and "98.33" in lines["xl_lora"]
    notes = [line for line in captured.out.splitlines() if line.startswith("note:")]
    assert any("head" in n and "not valid JSON" in n for n in notes)
    assert any("all" in n and "val_accuracy" in n for n in notes)
    assert any("mystery" in n for n in notes)
    assert "bonus script's own split" in captured.out and "ran with" not in captured.out


def test_read_runs_and_compare(tmp_path):
    _write(tmp_path / "metrics.json", _metrics("first", 0.8, 0.8, 0.74, n=12))
    runs, problems = read_runs(tmp_path)
    assert problems == [] and len(runs) == 1 and runs[0]["n"] == 12
    out = compare(experiment("first"), runs)
    assert out["diff"]["test"] == pytest.approx(-1.0) and out["within_noise"] and out["changed"] == {}
    out = compare(experiment("ex6.3"), [{**runs[0], "config": {**runs[0]["config"], "epochs": 1}}])
    assert out["diff"]["train"] is None and out["changed"] == {"epochs": 1}
    # only like with like: another number of epochs is another experiment, so no verdict ...
    assert out["unlike"] == ["epochs"] and out["within_noise"] is None
    # ... while another seed or speed is the same experiment, compared as usual
    same = compare(experiment("first"), [{**runs[0], "config": {**runs[0]["config"], "seed": 7, "speed": "book"}}])
    assert same["unlike"] == [] and same["within_noise"] is not None
    for bad in ({"train_accuracy": 2, "val_accuracy": 0.5, "test_accuracy": 0.5}, [1, 2],
                {**_metrics("first", 0.8, 0.8, 0.8), "test_metrics": {"n": 0}}):
        _write(tmp_path / "metrics.json", bad)
        runs, problems = read_runs(tmp_path)
        assert runs == [] and len(problems) == 1 and problems[0].startswith("skipped")


def test_cli_run_refuses_bad_input_in_one_line(capsys, gptlib_home):
    assert _main(["experiments", "run", "lora2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No experiment 'lora2'") and err.count("\n") == 1 and "appendix_e" in err
    assert _main(["experiments", "run", "first", "--epochs", "0"]) == 2
    assert "epochs must be at least 1" in capsys.readouterr().err
    assert _main(["experiments", "run", "context", "--model-size", TINY, "--weights", "random"]) == 2  # 1024 > the tiny's 256
    assert "max_length 1024" in capsys.readouterr().err
    assert _main(["experiments", "run", "first", "--causal-mask", "maybe"]) == 2
    assert "true or false" in capsys.readouterr().err
    assert not any(gptlib_home.rglob("*.pth"))


def _tiny_run_args(key: str, small_tsv: Path) -> list[str]:
    args = ["experiments", "run", key, "--model-size", TINY, "--weights", "random", "--epochs", "1",
            "--train-limit", "40", "--data", str(small_tsv), "--device", "cpu", "--no-progress"]
    if experiment(key).settings.get("max_length"):  # pad to the context: the tiny model's is 256
        args += ["--max-length", "256"]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("key", [e.key for e in experiments()])
def test_cli_run_every_experiment_on_the_tiny_model(key, small_tsv, tmp_path, monkeypatch, capsys, gptlib_home,
                                                    one_thread):
    monkeypatch.chdir(tmp_path)
    code = _main(_tiny_run_args(key, small_tsv))
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    metrics = json.loads((tmp_path / "runs" / "experiments" / key / "metrics.json").read_text())
    want = experiment(key).config(model_size=TINY, weights="random", epochs=1, train_limit=40).effective()
    for name in experiment(key).settings:
        if name not in ("model_size", "weights", "max_length"):
            assert metrics["config"][name] == getattr(want, name), name
    assert metrics["config"]["model_size"] == TINY and metrics["config"]["figures"] is None
    assert not (tmp_path / "figures").exists()  # no plots unless --figures is given
    assert "Against the book: not compared: your run changes" in captured.out  # a tiny random model is unlike
    settings = experiment(key).settings  # the settings reached the run, not only its config
    assert ("adapter" in metrics["files"]) == (settings.get("trainable") == "lora")
    assert ("Causal mask off" in captured.out) == (settings.get("causal_mask") is False)
    if settings.get("batch_size") == 1:
        assert "batches of 1" in captured.out


@pytest.mark.slow
def test_cli_run_with_seeds_then_table(small_tsv, tmp_path, capsys, gptlib_home, one_thread):
    out = tmp_path / "mine"
    args = _tiny_run_args("last_real", small_tsv) + ["--seeds", "2", "--output", str(out / "last_real"),
                                                      "--figures", str(tmp_path / "fig")]
    assert _main(args) == 0, capsys.readouterr().err[-3000:]
    assert "test accuracy over 2 seeds" in capsys.readouterr().out
    assert all((out / "last_real" / f"seed-{s}" / "metrics.json").is_file() for s in (123, 124))
    assert (tmp_path / "fig" / "loss-plot.png").is_file()
    assert _main(["experiments", "table", "--runs", str(out)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("last_real"))
    assert re.search(r"\|\s+2\s+not compared \(other settings\)", row)  # a tiny random model: unlike
    assert "ran with model_size=gpt2-tiny (test), weights=random, epochs=1, train_limit=40" in table
