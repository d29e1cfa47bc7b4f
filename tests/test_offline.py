"""Offline use: the SMS data shipped with gptlib, the offline profile, and what a run without
pretrained weights says."""

from __future__ import annotations

import json

import pytest

from gptlib.cli import main
from gptlib.data import SPAM_SHA256, read_sms_spam, shipped_spam_file
from gptlib.finetune import resolve_data_file
from gptlib.support.files import sha256_of

pytestmark = pytest.mark.usefixtures("gptlib_home")


def test_the_shipped_copy_is_the_books_file_with_its_attribution():
    path = shipped_spam_file()
    assert sha256_of(path) == SPAM_SHA256
    assert len(read_sms_spam(path)) == 5572  # the book's way of reading it
    note = (path.parent / "SMSSpamCollection.ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in note and "Almeida" in note


def test_a_run_without_a_download_uses_the_shipped_copy_and_says_so(capsys):
    assert resolve_data_file(None) == shipped_spam_file()
    assert "shipped with gptlib" in capsys.readouterr().out


def test_an_earlier_download_or_a_given_url_comes_first(gptlib_home, serve_http, offline, capsys):
    cached = gptlib_home / "data" / "sms_spam_collection" / "SMSSpamCollection.tsv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(shipped_spam_file().read_bytes())
    assert resolve_data_file(None, verbose=False) == cached
    cached.unlink()

    def refuse(h):
        h.send_error(404)

    url = f"http://127.0.0.1:{serve_http(refuse)}/sms.zip"
    from gptlib.support.download import DownloadError

    with pytest.raises(DownloadError, match="404"):
        resolve_data_file(None, url=url, verbose=False)  # a URL asked for is tried, not replaced


def test_offline_the_main_job_reaches_the_weights_and_names_weights_random(offline, capsys, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    code = main(["finetune", "--no-progress", "--output", str(tmp_path / "run")])
    err = capsys.readouterr()
    assert code == 2
    assert "shipped with gptlib" in err.out  # the data step worked offline
    assert "--weights random" in err.err and len(err.err.strip().splitlines()) == 1


def test_plots_stay_in_the_run_folder_unless_asked_for(small_tsv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["finetune", "--data", str(small_tsv), "--model-size", "tiny", "--weights", "random", "--epochs", "1",
            "--no-progress", "--output", "run"]
    assert main(args) == 0
    assert not (tmp_path / "figures").exists()  # the repository's figures are never touched by default
    assert sorted(p.name for p in (tmp_path / "run" / "plots").iterdir()) == [
        "accuracy-plot.pdf", "accuracy-plot.png", "loss-plot.pdf", "loss-plot.png"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["files"]["loss_plot"].endswith(
        "run/plots/loss-plot.png")
    assert main([*args, "--figures", "figs"]) == 0
    assert (tmp_path / "figs" / "loss-plot.png").read_bytes() == (tmp_path / "run" / "plots" / "loss-plot.png").read_bytes()


def test_the_offline_profile_is_the_books_run_on_random_weights(monkeypatch):
    from gptlib.notebook import load_profile
    from gptlib.study.notes import profile_banner

    monkeypatch.setenv("GPTLIB_PROFILE", "offline")
    profile = load_profile()
    book = load_profile("book")
    assert profile.weights == "random" and book.weights == "pretrained"
    assert profile.data == str(shipped_spam_file())
    assert (profile.model_size, profile.epochs, profile.lr, profile.batch_size) == (book.model_size, book.epochs, book.lr,
                                                                               book.batch_size)
    assert "figures" not in {p.name for p in profile.work_dir.parents} and profile.figures_dir.is_relative_to(
        profile.work_dir)
    banner = profile_banner(profile)
    assert "Profile `offline`" in banner._repr_markdown_() and "random" in banner.text()


def test_a_notebook_without_weights_stops_in_one_line(offline, tmp_path, monkeypatch):
    from gptlib.notebook import NotebookStop, load_base_model, load_profile

    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    with pytest.raises(NotebookStop) as info:
        load_base_model(load_profile("book"))
    lines = info.value._render_traceback_()
    assert len(lines) == 1 and "GPTLIB_PROFILE=offline" in lines[0] and "model.safetensors" in lines[0]


def test_book_note_sets_a_result_beside_the_books_figure():
    from gptlib.notebook import load_profile
    from gptlib.study.notes import book_note

    offline = book_note("test accuracy", 0.94, 0.9567, load_profile("offline"))._repr_markdown_()
    assert "95.67%" in offline and "94.00% (-1.67 points; 95% interval 90.7-96.2%" in offline and "within noise" in offline
    assert "random weights" in offline
    far = repr(book_note("test accuracy", 0.80, 0.9567, load_profile("book")))
    assert "beyond" in far and "random" not in far
    assert "not run here" in repr(book_note("test accuracy", None, 0.9567, load_profile("book")))
