"""gptlib.data: the book's numbers on the real SMS data, download paths, and bad input."""

from __future__ import annotations

import hashlib
import io
import socket
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import gptlib.support.download
from gptlib.data import (
    SPAM_BACKUP_URL,
    SPAM_SHA256,
    SPAM_URL,
    DataError,
    SpamDataset,
    create_balanced_dataset,
    create_data_loaders,
    download_and_unzip_spam_data,
    map_labels,
    prepare_spam_splits,
    random_split,
    read_sms_spam,
    save_splits,
    spam_datasets,
)
from gptlib.support.download import DownloadError

pytestmark = pytest.mark.usefixtures("gptlib_home")

BOOK_LABELS = {"ham": 0, "spam": 1}


# =========================================================================== real data


@pytest.fixture(scope="module")
def real(real_data_file, tmp_path_factory):
    """The book's pipeline and ours on the real file, up to the saved CSV splits."""
    df = read_sms_spam(real_data_file)
    balanced = create_balanced_dataset(df)
    mapped = map_labels(balanced)
    splits = random_split(mapped, 0.7, 0.1)
    folder = tmp_path_factory.mktemp("real_splits")
    paths = save_splits(*splits, folder=folder)
    return SimpleNamespace(df=df, balanced=balanced, mapped=mapped, splits=splits, paths=paths)


@pytest.fixture(scope="module")
def real_datasets(real, tokenizer):
    train_csv, val_csv, test_csv = real.paths
    train = SpamDataset(train_csv, tokenizer)
    val = SpamDataset(val_csv, tokenizer, max_length=train.max_length)
    test = SpamDataset(test_csv, tokenizer, max_length=train.max_length)
    return train, val, test


@pytest.mark.realdata
def test_read_sms_spam_counts_book_way_and_strict(real_data_file):
    df = read_sms_spam(real_data_file)
    assert list(df.columns) == ["Label", "Text"]
    assert len(df) == 5572
    assert df["Label"].value_counts().to_dict() == {"ham": 4825, "spam": 747}
    strict = read_sms_spam(real_data_file, strict=True)
    assert len(strict) == 5574
    assert strict["Label"].value_counts().to_dict() == {"ham": 4827, "spam": 747}
    # the book reads the file exactly like this
    book = pd.read_csv(real_data_file, sep="\t", header=None, names=["Label", "Text"])
    pd.testing.assert_frame_equal(df, book)


@pytest.mark.realdata
def test_balanced_and_split_sizes(real):
    assert len(real.balanced) == 1494
    assert real.balanced["Label"].value_counts().to_dict() == {"ham": 747, "spam": 747}
    # ham first, then spam, as the book concatenates
    assert (real.balanced["Label"].iloc[:747] == "ham").all()
    assert (real.balanced["Label"].iloc[747:] == "spam").all()
    assert sorted(real.mapped["Label"].unique().tolist()) == [0, 1]
    assert [len(s) for s in real.splits] == [1045, 149, 300]


@pytest.mark.realdata
def test_split_rows_identical_to_the_book(real):
    from llms_from_scratch import ch06

    book_balanced = ch06.create_balanced_dataset(real.df)
    pd.testing.assert_frame_equal(real.balanced, book_balanced)
    book_balanced["Label"] = book_balanced["Label"].map(BOOK_LABELS)
    pd.testing.assert_frame_equal(real.mapped, book_balanced)
    for ours, theirs in zip(real.splits, ch06.random_split(book_balanced, 0.7, 0.1)):
        pd.testing.assert_frame_equal(ours, theirs)


@pytest.mark.realdata
def test_spam_dataset_lengths_and_truncation(real_datasets, tokenizer):
    train, val, test = real_datasets
    assert train.max_length == 120
    assert max(train.lengths) == 120
    assert 25 < sum(train.lengths) / len(train) < 35  # the book: about 30 tokens on average
    for ds in (train, val, test):
        assert ds.max_length == 120
        assert {len(row) for row in ds.encoded_texts} == {120}
        assert ds[0][0].shape == (120,) and ds[0][0].dtype == torch.long
    # a shorter max_length really truncates
    short = SpamDataset(val.data, tokenizer, max_length=10)
    assert {len(row) for row in short.encoded_texts} == {10}
    assert short.encoded_texts[0] == val.token_ids[0][:10] + [50256] * (10 - len(val.token_ids[0][:10]))


@pytest.mark.realdata
def test_encoded_texts_equal_the_books(real, real_datasets, tokenizer):
    from llms_from_scratch import ch06

    train_csv, val_csv, test_csv = real.paths
    book_train = ch06.SpamDataset(train_csv, tokenizer)
    book_val = ch06.SpamDataset(val_csv, tokenizer, max_length=book_train.max_length)
    book_test = ch06.SpamDataset(test_csv, tokenizer, max_length=book_train.max_length)
    for ours, theirs in zip(real_datasets, (book_train, book_val, book_test)):
        assert ours.max_length == theirs.max_length
        assert ours.encoded_texts == theirs.encoded_texts
        assert ours.labels == theirs.data["Label"].tolist()


@pytest.mark.realdata
def test_data_loaders_match_the_books(real_datasets, tokenizer, real):
    from llms_from_scratch import ch06

    train_loader, val_loader, test_loader = create_data_loaders(*real_datasets)
    assert [len(loader) for loader in (train_loader, val_loader, test_loader)] == [130, 19, 38]
    ours = [(x.clone(), y.clone()) for x, y in train_loader]
    assert ours[0][0].shape == (8, 120) and ours[0][1].shape == (8,)

    train_csv, _, _ = real.paths
    book_train = ch06.SpamDataset(train_csv, tokenizer)
    torch.manual_seed(123)
    book_loader = DataLoader(book_train, batch_size=8, shuffle=True, num_workers=0, drop_last=True)
    book = list(book_loader)
    assert len(book) == len(ours)
    for (x1, y1), (x2, y2) in zip(ours, book):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


# =========================================================================== download / local copy


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


@pytest.fixture
def small_bytes(small_tsv) -> bytes:
    return small_tsv.read_bytes()


@pytest.fixture
def paths(tmp_path) -> SimpleNamespace:
    folder = tmp_path / "dl"
    return SimpleNamespace(
        folder=folder,
        zip=folder / "sms_spam_collection.zip",
        extracted=folder / "sms_spam_collection",
        data=folder / "sms_spam_collection" / "SMSSpamCollection.tsv",
    )


def _call(paths, **kw) -> Path:
    kw.setdefault("timeout", 3.0)
    kw.setdefault("progress", False)
    return download_and_unzip_spam_data(
        kw.pop("url", SPAM_URL), paths.zip, paths.extracted, paths.data, **kw)


def _no_part_files(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if p.name.endswith(".part")] if folder.exists() else []
    assert left == [], f"temporary files left behind: {left}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_sleep(monkeypatch):
    """Retries without the pauses between them (download_file sleeps 1 s, 2 s, ...)."""
    sleeps: list[float] = []

    class NoSleepTime:
        sleep = staticmethod(sleeps.append)

        def __getattr__(self, name):
            return getattr(time, name)

    monkeypatch.setattr(gptlib.support.download, "time", NoSleepTime())
    return sleeps


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_local_copy_raw_file(paths, small_tsv, small_bytes):
    out = _call(paths, local_copy=small_tsv, sha256=None)
    assert out == paths.data
    assert paths.data.read_bytes() == small_bytes
    assert not paths.zip.exists()  # nothing was downloaded
    _no_part_files(paths.folder)


def test_local_copy_zip_and_folder(paths, tmp_path, small_bytes):
    src = tmp_path / "src"
    src.mkdir()
    (src / "sms_spam_collection.zip").write_bytes(
        _zip_bytes({"readme": b"about", "SMSSpamCollection": small_bytes}))
    _call(paths, local_copy=src / "sms_spam_collection.zip", sha256=None)
    assert paths.data.read_bytes() == small_bytes
    paths.data.unlink()
    _call(paths, local_copy=src, sha256=None)  # a folder holding the zip
    assert paths.data.read_bytes() == small_bytes


def test_local_copy_checksum_checked(paths, small_tsv):
    with pytest.raises(DataError, match="sha256") as err:
        _call(paths, local_copy=small_tsv)  # default sha256: the real file's
    assert str(small_tsv) in str(err.value)
    assert not paths.data.exists()


def test_missing_local_copy_is_an_error(paths, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _call(paths, local_copy=tmp_path / "nowhere")


def test_gptlib_data_dir(paths, tmp_path, monkeypatch, small_bytes):
    src = tmp_path / "manual"
    src.mkdir()
    (src / "SMSSpamCollection").write_bytes(small_bytes)
    monkeypatch.setenv("GPTLIB_DATA_DIR", str(src))
    _call(paths, url=f"http://127.0.0.1:{closed_port()}/x.zip", backup_url=None, sha256=None)
    assert paths.data.read_bytes() == small_bytes


def test_default_paths_live_under_gptlib_home(gptlib_home, small_tsv, small_bytes):
    out = download_and_unzip_spam_data(local_copy=small_tsv, sha256=None, progress=False)
    assert out.is_relative_to(gptlib_home)
    assert out.read_bytes() == small_bytes


@pytest.mark.realdata
def test_real_local_copies(paths, real_data_dir, monkeypatch):
    for source in (real_data_dir / "SMSSpamCollection", real_data_dir / "sms_spam_collection.zip", real_data_dir):
        paths.data.unlink(missing_ok=True)
        _call(paths, local_copy=source)
        assert hashlib.sha256(paths.data.read_bytes()).hexdigest() == SPAM_SHA256
    paths.data.unlink()
    monkeypatch.setenv("GPTLIB_DATA_DIR", str(real_data_dir))
    _call(paths, url=f"http://127.0.0.1:{closed_port()}/x.zip", backup_url=None)
    assert hashlib.sha256(paths.data.read_bytes()).hexdigest() == SPAM_SHA256


@pytest.mark.realdata
def test_existing_file_with_right_checksum_is_kept(paths, real_data_file, capsys):
    paths.data.parent.mkdir(parents=True)
    paths.data.write_bytes(real_data_file.read_bytes())
    before = paths.data.stat().st_mtime_ns
    # no server and no backup: any network access would fail
    out = _call(paths, url=f"http://127.0.0.1:{closed_port()}/x.zip", backup_url=None)
    assert out == paths.data
    assert paths.data.stat().st_mtime_ns == before
    assert "already exists" in capsys.readouterr().out


def test_existing_file_is_kept_without_network(paths, small_bytes, capsys):
    paths.data.parent.mkdir(parents=True)
    paths.data.write_bytes(small_bytes)
    _call(paths, url=f"http://127.0.0.1:{closed_port()}/x.zip", backup_url=None, sha256=None)
    assert paths.data.read_bytes() == small_bytes
    assert "Skipping" in capsys.readouterr().out


def test_given_copy_is_checked_even_with_a_good_file_in_place(paths, real_data_file, tmp_path):
    """A typo or a wrong zip passed as the local copy is an error, not silently the cached file."""
    paths.data.parent.mkdir(parents=True)
    paths.data.write_bytes(real_data_file.read_bytes())
    with pytest.raises(FileNotFoundError, match="typo.txt"):
        _call(paths, local_copy=tmp_path / "typo.txt")
    wrong = tmp_path / "other.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("readme", "not the data")
    with pytest.raises(DataError, match="other.zip"):
        _call(paths, local_copy=wrong)
    assert paths.data.read_bytes() == real_data_file.read_bytes()  # the good file is untouched
    before = paths.data.stat().st_mtime_ns
    assert _call(paths, local_copy=real_data_file) == paths.data  # the same copy: nothing rewritten
    assert paths.data.stat().st_mtime_ns == before


def test_existing_file_with_wrong_checksum_is_replaced(paths, small_tsv, small_bytes):
    paths.data.parent.mkdir(parents=True)
    paths.data.write_bytes(b"damaged")
    _call(paths, local_copy=small_tsv, sha256=hashlib.sha256(small_bytes).hexdigest())
    assert paths.data.read_bytes() == small_bytes


# --------------------------------------------------------------------------- a local HTTP server


@pytest.fixture
def server(no_proxy, serve_http):
    routes: dict[str, bytes] = {}
    hits: dict[str, int] = {}

    def handle(h):
        hits[h.path] = hits.get(h.path, 0) + 1
        body = routes.get(h.path)
        if body is None:
            h.send_error(404)
            return
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)

    port = serve_http(handle, protocol="HTTP/1.1")
    return SimpleNamespace(routes=routes, hits=hits, url=lambda p: f"http://127.0.0.1:{port}{p}")


def test_http_primary_404_then_backup(server, paths, small_bytes):
    server.routes["/backup.zip"] = _zip_bytes({"SMSSpamCollection": small_bytes, "readme": b"r"})
    out = _call(paths, url=server.url("/missing.zip"), backup_url=server.url("/backup.zip"), sha256=None)
    assert out == paths.data and paths.data.read_bytes() == small_bytes
    assert server.hits == {"/missing.zip": 1, "/backup.zip": 1}  # a 404 is not retried
    _no_part_files(paths.folder)
    # a second call does no network access at all
    _call(paths, url=server.url("/missing.zip"), backup_url=server.url("/backup.zip"), sha256=None)
    assert server.hits == {"/missing.zip": 1, "/backup.zip": 1}


@pytest.mark.realdata
def test_http_real_zip_with_checksum(server, paths, real_data_file):
    server.routes["/sms.zip"] = _zip_bytes({"SMSSpamCollection": real_data_file.read_bytes()})
    _call(paths, url=server.url("/gone.zip"), backup_url=server.url("/sms.zip"))
    assert hashlib.sha256(paths.data.read_bytes()).hexdigest() == SPAM_SHA256
    assert len(read_sms_spam(paths.data)) == 5572


def test_http_zip_without_data_file(server, paths):
    server.routes["/other.zip"] = _zip_bytes({"readme": b"not the data", "data.csv": b"a,b"})
    with pytest.raises(DataError) as err:
        _call(paths, url=server.url("/other.zip"), backup_url=None, sha256=None)
    assert "SMSSpamCollection" in str(err.value) and str(paths.zip) in str(err.value)
    assert not paths.zip.exists(), "a zip without the data must not be kept"
    assert not paths.data.exists()
    _no_part_files(paths.folder)


def test_http_corrupt_zip(server, paths):
    server.routes["/bad.zip"] = b"PK\x03\x04 this is not really a zip file" * 10
    with pytest.raises(DataError, match="zip"):
        _call(paths, url=server.url("/bad.zip"), backup_url=None, sha256=None)
    assert not paths.zip.exists() and not paths.data.exists()
    _no_part_files(paths.folder)


def test_http_wrong_checksum(server, paths, small_bytes):
    server.routes["/sms.zip"] = _zip_bytes({"SMSSpamCollection": small_bytes})
    with pytest.raises(DataError, match="sha256"):
        _call(paths, url=server.url("/sms.zip"), backup_url=None)  # expects the real file's sha256
    assert not paths.data.exists(), "no data file may be written when the checksum is wrong"
    assert not paths.zip.exists()
    _no_part_files(paths.folder)


def test_no_server_at_all(paths, no_sleep, no_proxy):
    sleeps = no_sleep
    primary = f"http://127.0.0.1:{closed_port()}/primary.zip"
    backup = f"http://127.0.0.1:{closed_port()}/backup.zip"
    with pytest.raises(DownloadError) as err:
        _call(paths, url=primary, backup_url=backup, timeout=1.0)
    msg = str(err.value)
    assert primary in msg and any(backup in t for t in err.value.tried)  # the message names the first
    assert "GPTLIB_DATA_DIR" in msg and "--data" in msg
    assert len(sleeps) > 0  # each URL was retried (without the pauses)
    assert not paths.data.exists() and not paths.zip.exists()
    _no_part_files(paths.folder)


def test_default_urls_are_the_books():
    assert SPAM_URL == "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
    assert SPAM_BACKUP_URL == "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip"


# =========================================================================== the small fixture


def test_fixture_book_way_and_strict_differ(small_tsv):
    book = read_sms_spam(small_tsv)
    strict = read_sms_spam(small_tsv, strict=True)
    assert len(strict) == 60
    assert strict["Label"].value_counts().to_dict() == {"ham": 32, "spam": 28}
    assert len(book) < len(strict)  # a message that begins with '"' swallows the next lines
    assert strict["Text"].str.startswith('"').sum() == 1


def test_tiny_csvs(tiny_csvs):
    sizes = [len(pd.read_csv(p)) for p in tiny_csvs]
    assert sizes == [42, 6, 12]


# =========================================================================== bad input


def _csv(tmp_path: Path, text: str, name: str = "split.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("header", ["label,text", "v1,v2", "Label,Message"])
def test_csv_without_label_text_columns(tmp_path, tokenizer, header):
    path = _csv(tmp_path, f"{header}\nham,hello there\nspam,WIN a prize\n")
    with pytest.raises(DataError) as err:
        SpamDataset(path, tokenizer)
    assert str(path) in str(err.value) and "Text" in str(err.value)


@pytest.mark.parametrize("bad", ["maybe", "-1", "0.5", "SPAMMY"])
def test_bad_labels_name_file_and_row(tmp_path, tokenizer, bad):
    path = _csv(tmp_path, f"Label,Text\n0,hello there\n{bad},WIN a prize\n1,claim now\n")
    with pytest.raises(DataError) as err:
        SpamDataset(path, tokenizer)
    msg = str(err.value)
    assert str(path) in msg and "row 1" in msg and bad in msg


def test_bad_labels_in_raw_file(tmp_path):
    path = _csv(tmp_path, "ham\thello\nspm\tWIN now\n", "SMSSpamCollection")
    with pytest.raises(DataError, match="spm") as err:
        read_sms_spam(path)
    assert str(path) in str(err.value)


def test_ham_spam_and_01_labels_accepted(tmp_path, tokenizer):
    words = SpamDataset(_csv(tmp_path, "Label,Text\nham,hi\nspam,WIN\n", "a.csv"), tokenizer)
    ids = SpamDataset(_csv(tmp_path, "Label,Text\n0,hi\n1,WIN\n", "b.csv"), tokenizer)
    assert words.labels == ids.labels == [0, 1]
    assert words.encoded_texts == ids.encoded_texts


def test_empty_split_header_only(tmp_path, tokenizer):
    path = _csv(tmp_path, "Label,Text\n")
    with pytest.raises(DataError) as err:
        SpamDataset(path, tokenizer)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", ["", "Label,Text\n0,hello\n1,a,b,c\n"], ids=["zero-bytes", "ragged"])
def test_unreadable_csv_names_the_file(tmp_path, tokenizer, content):
    path = _csv(tmp_path, content)
    with pytest.raises(DataError) as err:
        SpamDataset(path, tokenizer)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("row", ["1,", '1,"   "', "1"], ids=["missing", "blank", "no-field"])
def test_empty_or_missing_text(tmp_path, tokenizer, row):
    path = _csv(tmp_path, f"Label,Text\n0,hello\n0,fine thanks\n{row}\n")
    with pytest.raises(DataError) as err:
        SpamDataset(path, tokenizer)
    assert str(path) in str(err.value) and "row 2" in str(err.value)


def test_missing_csv_file(tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        SpamDataset(tmp_path / "nope.csv", tokenizer)


def test_map_labels_twice_is_harmless(small_tsv):
    df = read_sms_spam(small_tsv, strict=True)
    once = map_labels(df)
    twice = map_labels(once)
    pd.testing.assert_frame_equal(once, twice)
    assert not twice["Label"].isna().any()
    assert set(twice["Label"]) == {0, 1}
    assert (once["Label"] == df["Label"].map(BOOK_LABELS)).all()
    # the book's way, re-run, turns every label into NaN: the bug map_labels avoids
    book = df.copy()
    book["Label"] = book["Label"].map(BOOK_LABELS)
    assert book["Label"].map(BOOK_LABELS).isna().all()


def test_create_balanced_dataset_on_mapped_labels(small_tsv):
    df = read_sms_spam(small_tsv, strict=True)
    a = map_labels(create_balanced_dataset(df))
    b = create_balanced_dataset(map_labels(df))
    pd.testing.assert_frame_equal(a, b)
    assert a["Label"].value_counts().to_dict() == {0: 28, 1: 28}


def test_random_split_bad_fractions(small_tsv):
    df = read_sms_spam(small_tsv, strict=True)
    for train_frac, val_frac in ((0.8, 0.3), (0.0, 0.1), (1.2, 0.0)):
        with pytest.raises(ValueError, match="frac"):
            random_split(df, train_frac, val_frac)


def test_no_function_mutates_its_input(small_tsv, tokenizer):
    raw = read_sms_spam(small_tsv, strict=True)
    checks = [
        (raw, create_balanced_dataset),
        (raw, map_labels),
        (map_labels(raw), lambda d: random_split(d, 0.7, 0.1)),
        (raw, lambda d: SpamDataset(d, tokenizer)),
        (map_labels(raw), lambda d: SpamDataset(d, tokenizer, padding="batch")),
    ]
    for df, fn in checks:
        before = df.copy()
        fn(df)
        pd.testing.assert_frame_equal(df, before)


def test_spam_dataset_accepts_a_dataframe(tiny_csvs, tokenizer):
    from_csv = SpamDataset(tiny_csvs.train, tokenizer)
    from_df = SpamDataset(pd.read_csv(tiny_csvs.train), tokenizer)
    assert from_df.encoded_texts == from_csv.encoded_texts
    assert from_df.labels == from_csv.labels
    assert from_df.max_length == from_csv.max_length == max(len(tokenizer.encode(t)) for t in
                                                            pd.read_csv(tiny_csvs.train)["Text"])
    assert len(from_df) == 42


def test_special_token_text_is_plain_text(tokenizer):
    df = pd.DataFrame({"Label": ["ham"], "Text": ["see you <|endoftext|> later"]})
    ds = SpamDataset(df, tokenizer)
    assert 50256 not in ds.token_ids[0]


def test_batch_padding(tiny_csvs, tokenizer):
    train, val, test = (SpamDataset(p, tokenizer, padding="batch") for p in tiny_csvs)
    assert {len(r) for r in train.encoded_texts} != {train.max_length}  # not padded in the dataset
    train_loader, val_loader, _ = create_data_loaders(train, val, test, batch_size=4)
    widths = []
    for inputs, labels in train_loader:
        assert inputs.dtype == torch.long and labels.shape == (inputs.shape[0],)
        real = inputs != 50256
        lengths = real.sum(1)
        assert inputs.shape[1] == lengths.max()  # padded to this batch's longest message
        for row, n in zip(inputs, lengths.tolist()):  # pads only at the end
            assert (row[n:] == 50256).all() and (row[:n] != 50256).all()
        widths.append(inputs.shape[1])
    assert len(set(widths)) > 1
    # unshuffled: the exact messages, in order
    start = 0
    for inputs, labels in val_loader:
        for row, ids in zip(inputs, val.token_ids[start:start + len(inputs)]):
            assert row.tolist() == ids + [50256] * (inputs.shape[1] - len(ids))
        assert labels.tolist() == val.labels[start:start + len(inputs)]
        start += len(inputs)
    assert start == len(val)


def test_max_length_padding_default(tiny_csvs, tokenizer):
    train, val, test = spam_datasets(*tiny_csvs, tokenizer)
    assert val.max_length == test.max_length == train.max_length == max(train.lengths)
    loaders = create_data_loaders(train, val, test, batch_size=8)
    assert [len(loader) for loader in loaders] == [42 // 8, 1, 2]
    for loader in loaders:
        for inputs, _ in loader:
            assert inputs.shape[1] == train.max_length


def test_spam_datasets_caps_and_passes_settings(tiny_csvs, tokenizer):
    longest = max(SpamDataset(tiny_csvs.train, tokenizer).lengths)
    train, val, test = spam_datasets(*tiny_csvs, tokenizer, padding="batch", context_length=longest - 3)
    assert train.max_length == val.max_length == test.max_length == longest - 3
    assert all(ds.padding == "batch" for ds in (train, val, test))
    assert max(train.lengths) == longest - 3  # cut to the context, not beyond it
    train, val, _ = spam_datasets(*tiny_csvs, tokenizer, max_length=7)
    assert train.max_length == val.max_length == 7
    frame = pd.read_csv(tiny_csvs.train).assign(Label=lambda d: d["Label"].map({0: "keep", 1: "drop"}))
    train, _, _ = spam_datasets(frame, tiny_csvs.val, tiny_csvs.test, tokenizer,
                                label_map={"keep": 0, "drop": 1})
    assert train.labels == pd.read_csv(tiny_csvs.train)["Label"].tolist()


def test_truncation_to_max_length(tiny_csvs, tokenizer):
    texts = pd.read_csv(tiny_csvs.test)["Text"]
    ds = SpamDataset(tiny_csvs.test, tokenizer, max_length=6)
    assert ds.max_length == 6
    for row, text in zip(ds.encoded_texts, texts):
        ids = tokenizer.encode(text)[:6]
        assert row == ids + [50256] * (6 - len(ids))
    assert any(len(tokenizer.encode(t)) > 6 for t in texts)
    with pytest.raises(ValueError, match="max_length"):
        SpamDataset(tiny_csvs.test, tokenizer, max_length=0)


def test_batch_size_larger_than_training_set(tiny_csvs, tokenizer):
    train, val, test = (SpamDataset(p, tokenizer) for p in tiny_csvs)
    with pytest.raises(ValueError, match="batch_size"):
        create_data_loaders(train, val, test, batch_size=len(train) + 1)
    with pytest.raises(ValueError, match="batch_size"):
        create_data_loaders(train, val, test, batch_size=0)
    create_data_loaders(train, val, test, batch_size=len(train))  # exactly one batch is fine


@pytest.mark.parametrize("text", ["NA", "null", "None", "nan", "N/A"])
def test_na_like_messages_survive_the_split_files(tmp_path, tokenizer, text):
    """A message "NA" (or "null", "None") is text in the SMS file and stays text in the saved
    split CSV that SpamDataset reads back."""
    lines = [f"ham\t{text}"] + [f"ham\thello number {i}" for i in range(7)] + [f"spam\tWIN cash {i}" for i in range(8)]
    sms = tmp_path / "sms.tsv"
    sms.write_text("\n".join(lines) + "\n")
    splits = prepare_spam_splits(sms, tmp_path / "splits", balanced=False)
    texts = []
    for split in splits:
        texts += SpamDataset(split, tokenizer).data["Text"].tolist()
    assert text in texts


def test_a_latin1_split_csv_is_named_with_its_line(tmp_path, tokenizer):
    path = tmp_path / "train.csv"
    path.write_bytes("Label,Text\n0,hello\n1,caf\xe9 prize\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train.csv line 3: byte 0xe9 is not UTF-8"):
        SpamDataset(path, tokenizer)
