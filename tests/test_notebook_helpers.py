"""gptlib.notebook helpers that every notebook calls: the data file a profile reads and the
device it runs on."""

from __future__ import annotations

import zipfile

import pytest
import torch

from gptlib.data import DataError
from gptlib.notebook import load_profile, profile_device, smoke_data_file, spam_data_file
from gptlib.support.download import DownloadError


def test_smoke_profile_reads_the_bundled_file(gptlib_home):
    profile = load_profile("smoke")
    assert spam_data_file(profile) == smoke_data_file()
    assert not any(gptlib_home.rglob("*"))  # nothing downloaded or unpacked


def test_a_plain_file_is_read_where_it_is(small_tsv, gptlib_home):
    profile = load_profile("book", data=str(small_tsv))
    assert spam_data_file(profile) == small_tsv


def test_a_zip_goes_through_the_checked_path(tmp_path, gptlib_home, real_data_file):
    """Same rule as ``--data``: a zip is unpacked and checked, and a wrong one is refused, even
    when the book's file is already in the cache."""
    spam_data_file(load_profile("book", data=str(real_data_file.parent)))  # fills the cache
    with pytest.raises(FileNotFoundError, match="typo"):
        spam_data_file(load_profile("book", data=str(tmp_path / "typo")))
    bad = tmp_path / "sms.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme", "not the data")
    with pytest.raises((DataError, DownloadError), match="SMSSpamCollection"):
        spam_data_file(load_profile("book", data=str(bad)))


def test_real_zip_is_unpacked(real_data_file, tmp_path, gptlib_home):
    copy = tmp_path / "sms_spam_collection.zip"
    with zipfile.ZipFile(copy, "w") as zf:
        zf.write(real_data_file, "SMSSpamCollection")
    path = spam_data_file(load_profile("book", data=str(copy)))
    assert path.read_bytes() == real_data_file.read_bytes()


def test_profile_device_gives_the_smoke_model_one_thread():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert profile_device(load_profile("smoke")) == torch.device("cpu")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        profile_device(load_profile("book", device="cpu"))
        assert torch.get_num_threads() == 2  # the book's profile keeps the machine's threads
    finally:
        torch.set_num_threads(before)
