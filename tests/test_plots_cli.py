"""gptlib.plots and the command line (``python -m gptlib``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from gptlib.cli import main
from gptlib.plots import plot_training, plot_values

pytestmark = pytest.mark.usefixtures("gptlib_home")

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = "gpt2-tiny (test)"


# =========================================================================== plots


def test_plot_values_writes_png_and_pdf(tmp_path):
    out = tmp_path / "figs"
    epochs = torch.linspace(0, 5, 6)
    examples = torch.linspace(0, 5200, 6)
    fig = plot_values(epochs, examples, [0.9, 0.6, 0.4, 0.3, 0.2, 0.1], [1.0, 0.7, 0.5, 0.4, 0.3, 0.25],
                      output_dir=out, show=False)
    png, pdf = out / "loss-plot.png", out / "loss-plot.pdf"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 1_000
    assert sorted(p.name for p in out.iterdir()) == ["loss-plot.pdf", "loss-plot.png"]  # no temp files
    ax1, ax2 = fig.axes
    assert ax1.get_xlabel() == "Epochs" and ax1.get_ylabel() == "Loss"
    assert ax2.get_xlabel() == "Examples seen"
    assert [line.get_label() for line in ax1.get_lines()] == ["Training loss", "Validation loss"]


def test_plot_values_without_output_dir_writes_nothing(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    plot_values([0, 1], [0, 8], [0.5, 0.4], [0.6, 0.5], label="accuracy", output_dir=None, show=False)
    assert list(work.iterdir()) == []


def test_plot_values_length_mismatch():
    with pytest.raises(ValueError, match="differ"):
        plot_values([0, 1], [0, 8], [0.5, 0.4], [0.6], output_dir=None, show=False)


def test_plot_training_writes_both(tmp_path):
    plot_training([0.8, 0.6, 0.5], [0.9, 0.7, 0.6], [0.6, 0.9], [0.5, 0.8], examples_seen=2080,
                  num_epochs=2, output_dir=tmp_path, show=False)
    for label in ("loss", "accuracy"):
        assert (tmp_path / f"{label}-plot.png").read_bytes()[:8] == PNG_MAGIC
        assert (tmp_path / f"{label}-plot.pdf").is_file()


# =========================================================================== command line


def cli_env(home: Path) -> dict[str, str]:
    """Environment for a ``python -m gptlib`` subprocess: private cache, one thread, no network.

    The proxies point at a host name that cannot resolve, so nothing is downloaded even on a
    machine with internet access, and the failure is immediate (no retries on DNS errors).
    """
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("GPTLIB_DATA_DIR", None)
    env.update({
        "GPTLIB_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "GPTLIB_DEVICE": "cpu",
        "http_proxy": "http://gptlib-offline.invalid:9",
        "https_proxy": "http://gptlib-offline.invalid:9",
        "HTTP_PROXY": "http://gptlib-offline.invalid:9",
        "HTTPS_PROXY": "http://gptlib-offline.invalid:9",
    })
    return env


def run_cli(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlib", *args], cwd=home, env=cli_env(home),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finetuned(real_data_file, tmp_path_factory):
    """One CLI fine-tuning run: tiny random model, 1 epoch, the real data."""
    root = tmp_path_factory.mktemp("cli")
    home = root / "home"
    home.mkdir()
    args = ["finetune", "--model-size", TINY, "--weights", "random", "--epochs", "1",
            "--data", str(real_data_file), "--output", str(root / "out"), "--figures", str(root / "fig"),
            "--no-progress"]
    proc = run_cli(args, home, timeout=400)
    return root, home, proc


@pytest.mark.slow
@pytest.mark.realdata
def test_cli_finetune_writes_its_outputs(finetuned):
    root, _, proc = finetuned
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    metrics = json.loads((root / "out" / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert 0.0 <= metrics["train_accuracy"] <= 1.0 and 0.0 <= metrics["val_accuracy"] <= 1.0
    assert metrics["examples_seen"] == 1040  # 130 batches of 8
    assert metrics["max_length"] == 120
    assert len(metrics["train_losses"]) == 3 and len(metrics["train_accs"]) == 1  # steps 0, 50, 100
    assert metrics["test_metrics"]["n"] == 300
    assert metrics["config"]["model_size"] == TINY and metrics["config"]["epochs"] == 1
    assert (root / "out" / "classifier.pth").is_file()
    for label in ("loss", "accuracy"):
        png = root / "fig" / f"{label}-plot.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
    assert "Test accuracy" in proc.stdout


@pytest.mark.slow
@pytest.mark.realdata
def test_cli_classify(finetuned, tokenizer):
    from gptlib.classifier import load_classifier
    from gptlib.train import classify_review

    root, home, proc = finetuned
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = root / "out" / "classifier.pth"
    texts = ["You are a winner you have been specially selected to receive $1000 cash or a $2000 award.",
             "Hey, just wanted to check if we're still on for dinner tonight? Let me know!"]
    out = run_cli(["classify", str(ckpt), *texts], home, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    model, meta = load_classifier(ckpt)
    assert meta["max_length"] == 120 and meta["token"] == "last"
    for line, text in zip(lines, texts):
        label = line.split("\t")[0]
        assert label in ("spam", "not spam")
        assert line.endswith(text)
        assert label == classify_review(text, model, tokenizer, "cpu", max_length=meta["max_length"])


@pytest.mark.slow
def test_cli_finetune_offline_gets_as_far_as_the_weights(tmp_path):
    """Offline, the README's main command takes the data shipped with gptlib and stops at the
    weights, in one line that names --weights random; nothing half-downloaded is kept."""
    home = tmp_path / "empty_home"
    home.mkdir()
    proc = run_cli(["finetune", "--no-progress", "--output", str(tmp_path / "run")], home, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "shipped with gptlib" in proc.stdout
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert "--weights random" in proc.stderr and "model.safetensors" in proc.stderr
    assert not list(home.rglob("*.safetensors")) and not list(home.rglob("*.part"))
    assert not (tmp_path / "run").exists()


@pytest.fixture
def offline(monkeypatch):
    """In-process CLI calls: every download fails at once, even on a machine with internet."""
    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(key, "http://gptlib-offline.invalid:9")


def _main_exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses
        return exc.code


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["finetune", "--epochs", "0"], "epochs must be at least 1"),
        (["finetune", "--batch-size", "0"], "batch_size must be at least 1"),
        (["finetune", "--lr", "-1"], "lr must be a positive number"),
        (["finetune", "--model-size", "gpt2-huge"], "gpt2-huge"),
        (["finetune", "--model-size", TINY, "--weights", "random", "--max-length", "5000"], "max_length 5000"),
        (["finetune", "--token", "middle"], "middle"),
        (["finetune", "--epochs", "two"], "two"),
        (["finetune", "--weights", "none"], "none"),
    ],
)
def test_cli_invalid_settings(argv, message, capsys, offline):
    code = _main_exit(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("choice", ["most_blocks", "last_13_blocks", "13"])
def test_cli_invalid_trainable_is_caught_before_any_work(capsys, gptlib_home, offline, choice):
    """A bad --trainable must be reported as such, before data or weights are fetched."""
    code = _main_exit(["finetune", "--trainable", choice, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert choice.replace("last_", "").replace("_blocks", "") in err
    assert "download" not in err.lower()
    assert not any(gptlib_home.rglob("*"))


def test_cli_own_data_file_is_used_with_a_note(small_tsv, tmp_path, capsys, offline):
    """A plain file in the SMS format that is not the book's is read as given, with a note."""
    code = _main_exit(["finetune", "--model-size", TINY, "--weights", "random", "--data", str(small_tsv),
                       "--epochs", "1", "--output", str(tmp_path / "out"), "--figures", str(tmp_path / "fig"),
                       "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert str(small_tsv) in out and "not the book's" in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["data"] == str(small_tsv)


def test_cli_damaged_zip_copy_is_refused(tmp_path, capsys, offline):
    """A zip given with --data goes through the checked path: a zip without the file is refused."""
    bad = tmp_path / "sms.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme", "not the data")
    code = _main_exit(["finetune", "--model-size", TINY, "--weights", "random", "--data", str(bad),
                       "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "SMSSpamCollection" in err


def test_cli_classify_missing_checkpoint(tmp_path, capsys, offline):
    code = _main_exit(["classify", str(tmp_path / "none.pth"), "hello"])
    err = capsys.readouterr().err
    assert code == 2 and "none.pth" in err and "Traceback" not in err


def test_cli_needs_a_command(capsys):
    assert _main_exit([]) == 2
    assert "finetune" in capsys.readouterr().err


@pytest.mark.parametrize("extra, token", [([], "last_real"), (["--token", "first"], "first")])
def test_cli_speed_fast_takes_the_fast_preset_in_the_record(extra, token, small_tsv, tmp_path, capsys, offline):
    """--speed fast fills in the fast preset's token, padding and dropout scope (those not given),
    says so, and the record shows them: nothing is rewritten behind the run's back."""
    code = _main_exit(["finetune", "--model-size", TINY, "--weights", "random", "--data", str(small_tsv),
                       "--epochs", "1", "--speed", "fast", "--output", str(tmp_path / "out"), "--no-progress",
                       *extra])
    out = capsys.readouterr().out
    assert code == 0
    assert "takes the fast preset" in out and "--padding batch" in out
    assert ("--token last_real" in out) == (not extra)
    config = json.loads((tmp_path / "out" / "metrics.json").read_text())["config"]
    assert (config["speed"], config["token"], config["padding"], config["dropout_scope"]) == (
        "fast", token, "batch", "trainable")


def test_plot_training_draws_each_accuracy_at_the_end_of_its_epoch():
    _, acc_fig = plot_training([0.8, 0.6, 0.5], [0.9, 0.7, 0.6], [0.85, 0.95, 1.0], [0.85, 0.85, 0.875],
                               examples_seen=3120, num_epochs=3, output_dir=None, show=False)
    line = acc_fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1.0, 2.0, 3.0]  # not 0, 1.5, 3: the first accuracy is after epoch 1


def test_a_one_epoch_accuracy_plot_shows_a_marker_on_positive_axes():
    _, acc_fig = plot_training([0.8, 0.6], [0.9, 0.7], [0.9], [0.85], examples_seen=1040, num_epochs=1,
                               output_dir=None, show=False)
    ax = acc_fig.axes[0]
    assert ax.get_lines()[0].get_marker() == "o"
    low, high = ax.get_xlim()
    assert low == 0 and high > 1
    assert acc_fig.axes[1].get_xlim()[0] == 0
