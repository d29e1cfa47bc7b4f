"""Fault injection: bad files, bad paths, bad numbers, stopped runs and steered downloads.

Every case asserts what a user sees: one line naming the file, the line or the value, exit
status 2 and no traceback from the command line; and, for stopped runs, a run folder that
holds either the previous complete set of files or the new one. Real ``python -m gptlib``
processes get SIGINT and SIGKILL at chosen moments. Read-only folders are made with
``chmod``; where the tests run as root (which ignores permission bits), the child process
first drops the two capabilities that let root write anywhere.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from gptlib.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model-size", "tiny", "--weights", "random", "--no-progress"]
pytestmark = pytest.mark.usefixtures("gptlib_home")


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """``python -m gptlib ARGS`` in this process: the exit status and what went to stderr."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    """Exit 2, no traceback, and the error as one line, the last thing printed (a progress bar
    may come before it)."""
    assert code == 2, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert "Traceback" not in err and lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    for needle in needles:
        assert needle in lines[-1], f"{needle!r} not in {lines[-1]!r}"


def _drop_root_powers() -> None:
    """In the child: without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped from the
    bounding set, so the exec keeps them dropped), root obeys permission bits like anyone."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "cannot drop root's file powers")


def _can_make_read_only(tmp_path: Path) -> bool:
    folder = tmp_path / "probe"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = subprocess.run(["sh", "-c", f"touch '{folder}/x'"], preexec_fn=_drop_root_powers,
                                capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        folder.chmod(0o755)
    return result.returncode != 0


def _sigint_as_a_terminal_sends_it() -> None:
    """In the child: Ctrl-C's default action. A suite started in the background (``cmd &`` in a
    script) runs with SIGINT ignored, which every child would inherit, and then never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def gptlib_process(*args: str, env: dict | None = None, cwd: Path | None = None, **kw) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "gptlib", *map(str, args)], cwd=cwd or REPO, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_a_terminal_sends_it, **kw)


# =============================================================== weight files and checkpoints


def _safetensors(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"w": torch.arange(256, dtype=torch.float32)}, path)
    return path


BAD_WEIGHTS = {
    "empty": (lambda p: p.write_bytes(b""), "it is empty"),
    "plain text": (lambda p: p.write_text("these are not weights\n" * 20), "plain text"),
    "html page": (lambda p: p.write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>"),
                  "HTML"),
    "cut short": (lambda p: p.write_bytes(_safetensors(p).read_bytes()[:-100]), "cut short"),
    "bad header": (lambda p: p.write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 64), "not valid JSON"),
}


@pytest.mark.parametrize("kind", BAD_WEIGHTS)
def test_bad_safetensors_files_are_named_and_explained(kind, tmp_path):
    from gptlib.support.weight_files import WeightFileError
    from gptlib.weights import WeightLoadError, read_state_dict

    path = tmp_path / "model.safetensors"
    make, words = BAD_WEIGHTS[kind]
    make(path)
    with pytest.raises((WeightFileError, WeightLoadError), match=words) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def _save_checkpoint(tmp_path: Path, tamper=None) -> Path:
    from gptlib.classifier import add_classification_head, save_classifier
    from gptlib.model import GPTModel, get_config

    torch.manual_seed(1)
    model = add_classification_head(GPTModel(get_config("tiny")))
    path = save_classifier(model, tmp_path / "classifier.pth", max_length=20, token="last", pad_token_id=50256)
    if tamper:
        payload = torch.load(path, weights_only=True)
        tamper(payload["model_state_dict"])
        torch.save(payload, path)
    return path


def test_classify_names_a_missing_tensor(tmp_path, capsys):
    path = _save_checkpoint(tmp_path, lambda sd: sd.pop("trf_blocks.1.att.W_query.bias"))
    assert_one_line(*run_cli(capsys, "classify", path, "hello"), "trf_blocks.1.att.W_query.bias", str(path))


def test_classify_names_a_mis_shaped_tensor(tmp_path, capsys):
    path = _save_checkpoint(tmp_path, lambda sd: sd.update({"final_norm.scale": torch.ones(3)}))
    assert_one_line(*run_cli(capsys, "classify", path, "hello"), "final_norm.scale", "(3,)")


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "pickled model", "folder", "state dict only"])
def test_classify_on_a_broken_checkpoint_is_one_line(kind, tmp_path, capsys):
    path = tmp_path / "classifier.pth"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "truncated":
        good = _save_checkpoint(tmp_path)
        good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "pickled model":
        torch.save(torch.nn.Linear(2, 2), path)  # a whole module: refused by weights_only=True
    elif kind == "folder":
        path = tmp_path / "run"
        path.mkdir()
    else:
        torch.save({"w": torch.zeros(2)}, path)
    code, err = run_cli(capsys, "classify", path, "hello")
    assert_one_line(code, err, str(path))
    assert "weights_only=False" not in err  # never suggest the unsafe way


@pytest.mark.parametrize("name, content, what", [
    ("metrics.json", b'{"test_accuracy": 0.95}', "JSON"), ("loss-plot.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image"),
    ("README.md", b"# My run\n", "plain text")])
def test_classify_on_a_file_that_is_not_a_checkpoint_says_what_it_is(name, content, what, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(content)
    code, err = run_cli(capsys, "classify", path, "hello")
    assert_one_line(code, err, str(path), what, "classifier.pth")
    assert "pickled" not in err


def test_classify_finds_the_checkpoint_in_a_run_folder(tmp_path, capsys):
    _save_checkpoint(tmp_path)
    assert main(["classify", str(tmp_path), "hello there"]) == 0
    assert "hello there" in capsys.readouterr().out


def _hub(serve_http, files: dict[str, bytes], announce_length: bool = True) -> str:
    def handle(h):
        data = files.get(h.path)
        if data is None:
            h.send_error(404)
            return
        h.send_response(200)
        if announce_length:
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return f"http://127.0.0.1:{serve_http(handle)}"


HUB_PATH = "/openai-community/gpt2/resolve/main/model.safetensors"


@pytest.mark.parametrize("served", ["html", "cut short without a length"])
def test_a_bad_download_never_enters_the_cache(served, serve_http, offline, monkeypatch, tmp_path, gptlib_home):
    from gptlib.support.download import DownloadError
    from gptlib.weights import download_pretrained, weights_path

    good = _safetensors(tmp_path / "good.safetensors").read_bytes()
    body = b"<html><body>Proxy login required</body></html>" if served == "html" else good[:-50]
    endpoint = _hub(serve_http, {HUB_PATH: body}, announce_length=served == "html")
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    with pytest.raises(DownloadError, match="HTML" if served == "html" else "cut short"):
        download_pretrained("gpt2-small (124M)", progress=False)
    assert not weights_path("small").exists()
    assert not [p for p in gptlib_home.rglob("*") if p.is_file()]  # no partial file either


def test_a_damaged_cached_file_is_fetched_again(serve_http, offline, monkeypatch, tmp_path):
    from gptlib.weights import download_pretrained, weights_path

    good = _safetensors(tmp_path / "good.safetensors").read_bytes()
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", _hub(serve_http, {HUB_PATH: good}))
    cached = weights_path("small")
    cached.parent.mkdir(parents=True)
    cached.write_text("<html>an old proxy page saved as the weights</html>")
    assert download_pretrained("small", progress=False).read_bytes() == good


def _hf_cache(root: Path, content: bytes, blob_name: str | None = None) -> Path:
    import hashlib

    repo = root / "hub" / "models--openai-community--gpt2"
    blob = repo / "blobs" / (blob_name or hashlib.sha256(content).hexdigest())
    blob.parent.mkdir(parents=True)
    blob.write_bytes(content)
    snapshot = repo / "snapshots" / "abc123" / "model.safetensors"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    return blob


def test_weights_from_the_hugging_face_cache_are_used_when_verified(offline, monkeypatch, tmp_path, capsys):
    from gptlib.support.download import DownloadError
    from gptlib.weights import download_pretrained

    good = _safetensors(tmp_path / "good.safetensors").read_bytes()
    blob = _hf_cache(tmp_path / "hf", good)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert download_pretrained("small", progress=False) == blob
    assert "Hugging Face cache" in capsys.readouterr().out
    # the cache keeps the file as a blob without a suffix: it is read as safetensors by its content
    from gptlib.weights import read_state_dict

    ours, theirs = read_state_dict(blob), read_state_dict(tmp_path / "good.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    _hf_cache(tmp_path / "bad", good, blob_name="0" * 64)  # its bytes do not hash to its name
    monkeypatch.setenv("HF_HOME", str(tmp_path / "bad"))
    with pytest.raises(DownloadError):
        download_pretrained("small", progress=False)


# ============================================================================ --data files


BAD_DATA = {
    "empty": ("", "holds no messages"),
    "one class": ("ham\thello\nham\tsee you\n", "no 'spam' messages"),
    "one row": ("spam\tWIN now\n", "no 'ham' messages"),
    "extra tab": ("ham\thi\nspam\tWIN\tnow\n", "line 2"),
    "empty text": ("ham\thi\nspam\t   \n", "line 2"),
    "bad label": ("ham\thi\nSPAM!\tWIN\n", "line 2"),
    "too few": ("ham\ta\nham\tb\nspam\tc\nspam\td\n", "at least 10"),
}


@pytest.mark.parametrize("kind", BAD_DATA)
def test_bad_data_files_name_the_file_and_line(kind, tmp_path, capsys):
    text, words = BAD_DATA[kind]
    data = tmp_path / "sms.tsv"
    data.write_text(text, encoding="utf-8")
    code, err = run_cli(capsys, "finetune", "--data", data, *TINY, "--output", tmp_path / "run")
    assert_one_line(code, err, words, str(data))
    assert not (tmp_path / "run").exists()


def test_non_utf8_bytes_name_the_line(tmp_path, capsys):
    data = tmp_path / "sms.tsv"
    data.write_bytes(b"ham\thello\nspam\tWIN \xe9\xe9 cash\n")
    assert_one_line(*run_cli(capsys, "finetune", "--data", data, *TINY), "line 2", "UTF-8")


def test_na_like_words_stay_text(tmp_path):
    from gptlib.data import read_sms_spam

    data = tmp_path / "sms.tsv"
    data.write_text("ham\tNA\nspam\tnull\nham\tNone\nspam\tnan\n", encoding="utf-8")
    assert read_sms_spam(data)["Text"].tolist() == ["NA", "null", "None", "nan"]


def test_own_csv_with_a_missing_column_is_one_line(tmp_path, capsys):
    data = tmp_path / "mine.csv"
    data.write_text("kind,words\na,b\n", encoding="utf-8")
    assert_one_line(*run_cli(capsys, "finetune", "--csv", data, *TINY), str(data), "Label")


# ======================================================================== numbers and paths


@pytest.mark.parametrize("flags, words", [
    (["--train-limit", "-5"], "--train-limit: train_limit"),
    (["--train-limit", "0"], "--train-limit: train_limit"),
    (["--eval-freq", "0"], "--eval-freq: eval_freq"),
    (["--max-length", "0"], "--max-length: max_length"),
    (["--max-length", "5000"], "--max-length: max_length"),
    (["--lora-rank", "0"], "--lora-rank: lora_rank"),
    (["--lora-alpha", "inf"], "--lora-alpha: lora_alpha"),
    (["--accumulation-steps", "0"], "--accumulation-steps: accumulation_steps"),
    (["--download-timeout", "0"], "--download-timeout: download_timeout"),
    (["--seed", "-1"], "--seed: seed"),
    (["--lr", "nan"], "--lr: lr"),
    (["--padding", "none"], "--padding: padding 'none'"),
    (["--trainable", "last_99_blocks"], "--trainable"),
    (["--device", "bogus"], "bogus"),
])
def test_numbers_out_of_range_name_the_setting(flags, words, small_tsv, tmp_path, capsys):
    code, err = run_cli(capsys, "finetune", "--data", small_tsv, *TINY, *flags, "--output", tmp_path / "run")
    assert_one_line(code, err, words)
    assert not (tmp_path / "run").exists()


def test_a_label_beyond_the_heads_classes_is_refused_before_training(tokenizer):
    import pandas as pd

    from gptlib.data import SpamDataset
    from gptlib.support.labels import check_label_range

    frame = pd.DataFrame({"Label": [0, 1, 2], "Text": ["a", "b", "c"]})
    ds = SpamDataset(frame, tokenizer)
    with pytest.raises(ValueError, match=r"label id\(s\) \[2\].*2 classes"):
        check_label_range({"training": ds.labels}, 2, ["not spam", "spam"])


def test_the_book_loop_refuses_labels_beyond_the_head_before_the_first_step(tokenizer):
    """train_classifier_simple itself (the book's API, no run_finetune) names the labels and
    the head's classes instead of an IndexError from inside the loss."""
    import pandas as pd
    from torch.utils.data import DataLoader

    from gptlib.classifier import add_classification_head
    from gptlib.data import SpamDataset
    from gptlib.model import GPTModel, get_config
    from gptlib.train import train_classifier_simple

    torch.manual_seed(0)
    model = add_classification_head(GPTModel(get_config("tiny")), num_classes=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frame = pd.DataFrame({"Label": list(range(10)), "Text": [f"message {i}" for i in range(10)]})
    loader = DataLoader(SpamDataset(frame, tokenizer), batch_size=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match=r"training data has label id\(s\) \[2, 3, 4, 5, 6\].*2 classes"):
        train_classifier_simple(model, loader, loader, optimizer, "cpu", 1, 1, 1, verbose=False)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # not one step taken


def test_output_that_is_a_file_is_found_before_training(small_tsv, tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    code, err = run_cli(capsys, "finetune", "--data", small_tsv, *TINY, "--output", tmp_path / "taken")
    assert_one_line(code, err, "--output", "file is in the way")
    assert (tmp_path / "taken").read_text() == "mine"


def test_figures_that_is_a_file_is_found_before_training(small_tsv, tmp_path, capsys):
    (tmp_path / "figs").write_text("mine")
    code, err = run_cli(capsys, "finetune", "--data", small_tsv, *TINY, "--output", tmp_path / "run",
                        "--figures", tmp_path / "figs")
    assert_one_line(code, err, "--figures")
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_gptlib_home_that_is_a_file(small_tsv, tmp_path, monkeypatch, capsys):
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path / "home"))
    code, err = run_cli(capsys, "download", "data", "--data-url", "http://127.0.0.1:9/x.zip", "--timeout", "1")
    assert_one_line(code, err, "GPTLIB_HOME")


@pytest.fixture
def read_only(tmp_path):
    """``make(folder)``: a folder nobody may write, for a child process (see the module's note)."""
    if not _can_make_read_only(tmp_path):
        pytest.skip("cannot make a folder read-only for a child process here")
    made = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        return folder

    yield make
    for folder in made:
        folder.chmod(0o755)


def _child(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlib", *map(str, args)], cwd=REPO,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          preexec_fn=_drop_root_powers, timeout=240)


@pytest.mark.parametrize("which", ["output", "figures"])
def test_read_only_output_or_figures_found_before_training(which, read_only, small_tsv, tmp_path):
    locked = read_only(tmp_path / "locked")
    out = locked / "run" if which == "output" else tmp_path / "run"
    figs = locked / "figs" if which == "figures" else tmp_path / "figs"
    result = _child("finetune", "--data", small_tsv, *TINY, "--output", out, "--figures", figs)
    assert_one_line(result.returncode, result.stderr.strip(), f"--{which}", "Permission denied")
    assert "Ep 1" not in result.stdout  # refused before the first step
    assert not (tmp_path / "run").exists()


def test_read_only_gptlib_home(read_only, tmp_path):
    home = read_only(tmp_path / "home")
    result = _child("download", "data", "--data-url", "http://127.0.0.1:9/x.zip", "--timeout", "1",
                    env={"GPTLIB_HOME": str(home)})
    assert_one_line(result.returncode, result.stderr.strip(), "GPTLIB_HOME", str(home))


# ====================================================================== runs that land whole


def _previous_run(small_tsv: Path, out: Path) -> dict:
    code = main(["finetune", "--data", str(small_tsv), *TINY, "--epochs", "1", "--output", str(out),
                 "--figures", "none"])
    assert code == 0
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def _wait_for(predicate, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the moment came: {proc.stderr.read()[-500:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the moment never came")
        time.sleep(0.002)


def _staged(out: Path, name: str | None = None) -> list[Path]:
    folders = list(out.parent.glob(f".{out.name}.partial-*"))
    return [f for f in folders if name is None or (f / name).exists()]


@pytest.mark.parametrize("moment", ["during training", "after the new checkpoint"])
def test_sigkill_leaves_the_previous_set(moment, small_tsv, tmp_path, capsys):
    out = tmp_path / "run"
    before = _previous_run(small_tsv, out)
    capsys.readouterr()
    proc = gptlib_process("finetune", "--data", small_tsv, *TINY, "--epochs", "30", "--seed", "7",
                          "--output", out, "--figures", tmp_path / "figs")
    _wait_for(lambda: bool(_staged(out, "data" if moment == "during training" else "classifier.pth")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # the earlier run's checkpoint and metrics, byte for byte
    assert json.loads(after["metrics.json"])["config"]["seed"] == 123
    # the next run tidies what the killed one left aside, and lands whole
    assert main(["finetune", "--data", str(small_tsv), *TINY, "--epochs", "1", "--seed", "9", "--output",
                 str(out), "--figures", "none"]) == 0
    assert not _staged(out)
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 9


def test_sigint_stops_cleanly_and_keeps_the_previous_set(small_tsv, tmp_path, capsys):
    out = tmp_path / "run"
    before = _previous_run(small_tsv, out)
    capsys.readouterr()
    proc = gptlib_process("finetune", "--data", small_tsv, *TINY, "--epochs", "2000", "--output", out,
                          "--figures", "none")
    _wait_for(lambda: bool(_staged(out, "data")), proc)
    time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not _staged(out)


def test_a_new_run_replaces_the_whole_set_and_keeps_other_files(small_tsv, tmp_path):
    out = tmp_path / "run"
    _previous_run(small_tsv, out)
    (out / "my-notes.txt").write_text("keep me")
    main(["finetune", "--data", str(small_tsv), *TINY, "--epochs", "1", "--seed", "5", "--output", str(out),
          "--figures", str(tmp_path / "figs")])
    metrics = json.loads((out / "metrics.json").read_text())
    saved = torch.load(out / "classifier.pth", weights_only=True)
    assert metrics["config"]["seed"] == saved["finetune_config"]["seed"] == 5
    assert (out / "my-notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in (out / "plots").iterdir())


# ================================================================================ downloads


def _sms_zip(small_tsv: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.write(small_tsv, "SMSSpamCollection")
    return buffer.getvalue()


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_the_data_url_can_point_at_a_mirror(how, serve_http, small_tsv, monkeypatch, capsys):
    hits = []
    body = _sms_zip(small_tsv)

    def handle(h):
        hits.append(h.path)
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    url = f"http://127.0.0.1:{serve_http(handle)}/mirror/sms.zip"
    args = ["download", "data"] + (["--data-url", url] if how == "flag" else [])
    if how == "environment":
        monkeypatch.setenv("GPTLIB_DATA_URL", url)
    code, err = run_cli(capsys, *args)
    # the mirror answered; the made-up file is not the book's, and its checksum says so
    assert hits == ["/mirror/sms.zip"]
    assert_one_line(code, err, "sha256")


def test_a_download_timeout_is_kept(serve_http, tmp_path, capsys, monkeypatch):
    real_sleep = time.sleep

    def stall(h):
        real_sleep(2)  # say nothing for 2 seconds; the client has given up by then
        try:
            h.send_error(500)
        except OSError:
            pass

    monkeypatch.setattr(time, "sleep", lambda s: None)  # no pauses between the retries

    url = f"http://127.0.0.1:{serve_http(stall)}/slow.zip"
    began = time.perf_counter()
    code, err = run_cli(capsys, "download", "data", "--data-url", url, "--timeout", "0.3")
    assert_one_line(code, err, "timed out")
    assert time.perf_counter() - began < 10


def test_two_downloads_of_one_file_at_once_both_end_with_the_complete_file(offline, serve_http, monkeypatch,
                                                                          tmp_path):
    """Two processes (here: threads) fetching the same weights at once each stream into their own
    hidden file and rename it into place: both get the whole file, and nothing half-written stays."""
    import concurrent.futures
    import time

    from gptlib.weights import download_pretrained

    good = _safetensors(tmp_path / "good.safetensors").read_bytes()

    def slow(h):
        h.send_response(200)
        h.send_header("Content-Length", str(len(good)))
        h.end_headers()
        for i in range(0, len(good), 256):
            h.wfile.write(good[i:i + 256])
            h.wfile.flush()
            time.sleep(0.05)

    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", f"http://127.0.0.1:{serve_http(slow)}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf-cache"))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: download_pretrained("small", progress=False, verbose=False), range(2)))
    assert paths[0] == paths[1] and paths[0].read_bytes() == good
    assert [p.name for p in paths[0].parent.iterdir()] == ["model.safetensors"]


def test_a_download_interrupted_by_ctrl_c_is_fetched_whole_the_next_time(offline, serve_http, monkeypatch,
                                                                         tmp_path):
    from gptlib.support import download
    from gptlib.weights import download_pretrained, weights_path

    good = _safetensors(tmp_path / "good.safetensors").read_bytes()
    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", _hub(serve_http, {HUB_PATH: good}))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf-cache"))
    real_read = download.CHUNK

    class CtrlC:  # the first transfer is interrupted after its first chunk, as Ctrl-C would
        calls = 0

    def interrupted_once(response_read):
        def read(n=-1):
            CtrlC.calls += 1
            if CtrlC.calls == 2:
                raise KeyboardInterrupt
            return response_read(min(n, 100) if n and n > 0 else real_read)
        return read

    real_urlopen = download.urllib.request.urlopen

    def urlopen(*args, **kwargs):
        response = real_urlopen(*args, **kwargs)
        response.read = interrupted_once(response.read)
        return response

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    with pytest.raises(KeyboardInterrupt):
        download_pretrained("small", progress=False, verbose=False)
    folder = weights_path("small").parent
    assert not [p for p in folder.iterdir()] if folder.exists() else True  # nothing half-written left
    assert download_pretrained("small", progress=False, verbose=False).read_bytes() == good


def test_download_data_needs_no_network_and_download_all_goes_on_to_the_weights(offline, monkeypatch, tmp_path,
                                                                                capsys):
    """The SMS data ships with gptlib: offline, `download data` names the file it will use, and
    `download all` still tries the weights and says at the end what it could not fetch."""
    from gptlib.data import shipped_spam_file

    monkeypatch.setenv("GPTLIB_HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf-cache"))
    monkeypatch.delenv("GPTLIB_DATA_URL", raising=False)
    assert main(["download", "data"]) == 0
    assert str(shipped_spam_file()) in capsys.readouterr().out
    code = main(["download", "all", "--timeout", "1"])
    captured = capsys.readouterr()
    assert str(shipped_spam_file()) in captured.out
    lines = captured.err.strip().splitlines()
    assert code == 2 and lines[-2].startswith("gpt2-small (124M): Could not download model.safetensors")
    assert lines[-1] == "error: could not fetch gpt2-small (124M) (see above); the rest is in place."
    assert len(lines[-2]) < 600  # one readable line, not a page


def test_a_state_dict_missing_one_query_bias_names_that_tensor(tmp_path):
    from gptlib.model import GPTModel, get_config
    from gptlib.weights import WeightLoadError, load_pretrained

    state = GPTModel(get_config("tiny")).state_dict()
    del state["trf_blocks.0.att.W_query.bias"]
    torch.save(state, tmp_path / "sd.pth")
    with pytest.raises(WeightLoadError) as err:
        load_pretrained(tmp_path / "sd.pth")
    assert "lack(s) tensor(s) trf_blocks.0.att.W_query.bias" in str(err.value)
    assert "W_key" not in str(err.value)
