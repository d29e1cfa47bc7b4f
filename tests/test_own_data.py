"""gptlib.support.own_data: your own labeled CSV files with K classes, down to SpamDataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gptlib.data import DataError, SpamDataset, random_split, spam_datasets
from gptlib.support.own_data import class_names_from, own_data_splits, read_labeled_csv
from gptlib.tokenizer import get_tokenizer


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def rows(labels: list[str]) -> str:
    return "Label,Text\n" + "".join(f"{label},message number {i} about {label}\n"
                                    for i, label in enumerate(labels))


@pytest.fixture
def three_files(tmp_path) -> tuple[Path, Path, Path]:
    train = write(tmp_path, "train.csv", rows(["sports", "politics", "tech"] * 4))
    val = write(tmp_path, "val.csv", rows(["tech", "sports"]))
    test = write(tmp_path, "test.csv", rows(["politics", "tech", "sports"]))
    return train, val, test


# --- reading one file -------------------------------------------------------------------------

def test_read_keeps_texts_lines_and_ignores_other_columns(tmp_path):
    path = write(tmp_path, "data.csv",
                 "Id,Text,Label\n"
                 '1,"first line\nsecond line",  pos \n'
                 "2,NA,neg\n"
                 "\n"
                 "3,None,neg\n"
                 "4,null,pos\n"
                 "5,nan,pos\n"
                 "6,N/A,neg\n")
    df = read_labeled_csv(path)
    assert list(df.columns) == ["Label", "Text", "line"]
    assert df["Label"].tolist() == ["pos", "neg", "neg", "pos", "pos", "neg"]
    assert df["Text"].tolist() == ["first line\nsecond line", "NA", "None", "null", "nan", "N/A"]
    # the quoted text spans lines 2-3 and line 5 is blank
    assert df["line"].tolist() == [2, 4, 6, 7, 8, 9]


def test_read_accepts_a_byte_order_mark_and_crlf(tmp_path):
    path = write(tmp_path, "excel.csv", b"\xef\xbb\xbfLabel,Text\r\nspam,caf\xc3\xa9\r\nham,ok\r\n")
    df = read_labeled_csv(path)
    assert df["Text"].tolist() == ["café", "ok"] and df["line"].tolist() == [2, 3]


@pytest.mark.parametrize("content, match", [
    (b"Label,Text\nspam,ok\nham,ok\nham,caf\xe9\n", r"bad\.csv line 4: byte 0xe9.*Save the file as UTF-8"),
    ("", r"bad\.csv is empty"),
    ("\n\n", r"bad\.csv is empty"),
    ("Label,Text\n", r"bad\.csv has a header but no examples"),
    ("kind,words\nspam,hi\n", r"bad\.csv.*columns \['kind', 'words'\].*none of them is the label or the text"),
    ("Label,words\nspam,hi\n", r"bad\.csv.*none of them is the text column"),
    ("category,class,Text\nspam,x,hi\n", r"bad\.csv.*more than one column that could be the label "
                                         r"\('category', 'class'\)"),
    ("Label,Text\nspam,hi\n,no label\n", r"bad\.csv line 3: the label is empty"),
    ("Label,Text\nspam,hi\nham,hey\nham,   \n", r"bad\.csv line 4: the text is empty"),
    ("Label,Text\nspam,hi\nspam,Win cash, now\n", r"bad\.csv line 3: this row has 3 fields.*double quotes"),
    ('Label,Text\nham,"a\nb"\nspam,"Hi" she said\n', r"bad\.csv line 4: .*cannot be read as CSV"),
    ('Label,Text\nham,ok\nspam,"never closed\nham,x\n', r"bad\.csv line 3: .*cannot be read as CSV"),
    ("Label,Text\nham,ok\nspam\n", r"bad\.csv line 3: this row has only 1 field"),
])
def test_read_errors_name_the_file_and_line(tmp_path, content, match):
    path = write(tmp_path, "bad.csv", content)
    with pytest.raises(DataError, match=match):
        read_labeled_csv(path)


def test_missing_file_is_named_with_its_role(tmp_path):
    with pytest.raises(DataError, match=r"validation file .*nowhere\.csv was not found"):
        read_labeled_csv(tmp_path / "nowhere.csv", role="validation")


# --- class names ------------------------------------------------------------------------------

def test_class_names_are_sorted_numerically_when_all_whole_numbers():
    assert class_names_from(pd.DataFrame({"Label": ["10", "2", "1", "2"], "Text": "x"})) == ["1", "2", "10"]
    assert class_names_from(pd.DataFrame({"Label": ["b", "10", "a", "2"], "Text": "x"})) == ["10", "2", "a", "b"]


def test_class_names_need_two_classes(tmp_path):
    df = read_labeled_csv(write(tmp_path, "one.csv", rows(["pos", "pos"])))
    with pytest.raises(DataError, match=r"at least 2 classes; .*one\.csv has only 'pos'"):
        class_names_from(df)


def test_class_names_do_not_change_the_frame():
    df = pd.DataFrame({"Label": [" b", "a"], "Text": ["x", "y"]})
    before = df.copy()
    assert class_names_from(df) == ["a", "b"]
    pd.testing.assert_frame_equal(df, before)


# --- splits -----------------------------------------------------------------------------------

def test_three_files_round_trip_with_ids_and_names(three_files):
    train, val, test, names = own_data_splits(*three_files)
    assert names == ["politics", "sports", "tech"]
    assert train["Label"].tolist()[:3] == [1, 0, 2]
    assert val["Label"].tolist() == [2, 1] and test["Label"].tolist() == [0, 2, 1]
    assert val["Text"].tolist() == ["message number 0 about tech", "message number 1 about sports"]
    assert val["line"].tolist() == [2, 3]
    assert list(train.columns) == ["Label", "Text", "line"]


def test_numeric_labels_become_positions_in_the_class_names(tmp_path):
    train = write(tmp_path, "train.csv", rows(["10", "2", "1"]))
    val = write(tmp_path, "val.csv", rows(["2"]))
    test = write(tmp_path, "test.csv", rows(["10"]))
    train_df, val_df, test_df, names = own_data_splits(train, val, test)
    assert names == ["1", "2", "10"]
    assert train_df["Label"].tolist() == [2, 1, 0] and val_df["Label"].tolist() == [1]
    assert test_df["Label"].tolist() == [2]


def test_label_unseen_in_training_is_an_error_naming_both_files(three_files, tmp_path):
    test = write(tmp_path, "test.csv", rows(["tech", "sports", "music"]))
    with pytest.raises(DataError, match=r"test\.csv line 4: label 'music' does not occur in the "
                                        r"training data .*train\.csv \(its classes: politics, sports, tech\)"):
        own_data_splits(three_files[0], three_files[1], test)


def test_a_class_missing_from_validation_is_fine(three_files, tmp_path):
    val = write(tmp_path, "val.csv", rows(["tech"]))
    _, val_df, _, names = own_data_splits(three_files[0], val, three_files[2])
    assert len(names) == 3 and val_df["Label"].tolist() == [2]


def test_one_file_is_split_70_10_20_deterministically(tmp_path):
    path = write(tmp_path, "all.csv", rows(["a", "b", "c", "d"] * 5))
    first = own_data_splits(csv=path, split=random_split)
    again = own_data_splits(csv=path, split=random_split)
    assert [len(f) for f in first[:3]] == [14, 2, 4]
    assert first[3] == ["a", "b", "c", "d"]
    for one, two in zip(first[:3], again[:3]):
        pd.testing.assert_frame_equal(one, two)
    lines = sorted(line for frame in first[:3] for line in frame["line"])
    assert lines == list(range(2, 22))  # every row lands in exactly one split
    other = own_data_splits(csv=path, random_state=7, split=random_split)
    assert other[0]["line"].tolist() != first[0]["line"].tolist()


def test_one_file_with_too_few_rows(tmp_path):
    path = write(tmp_path, "tiny.csv", rows(["a", "b", "c"] * 3))
    with pytest.raises(DataError, match=r"tiny\.csv has too few rows \(9\).*validation part empty"):
        own_data_splits(csv=path, split=random_split)


def test_one_file_with_a_class_too_rare_for_training(tmp_path):
    path = write(tmp_path, "rare.csv", rows(["a", "b"] * 10 + ["z"]))  # 'z' is on line 22
    whole = read_labeled_csv(path)
    raised = 0
    for seed in range(10):
        z_in_training = 22 in random_split(whole, 0.7, 0.1, seed)[0]["line"].tolist()
        if z_in_training:
            assert own_data_splits(csv=path, random_state=seed, split=random_split)[3] == ["a", "b", "z"]
        else:
            raised += 1
            with pytest.raises(DataError, match=r"rare\.csv line 22: label 'z' has so few examples"):
                own_data_splits(csv=path, random_state=seed, split=random_split)
    assert raised > 0


@pytest.mark.parametrize("kwargs, match", [
    ({}, "missing: train_csv, val_csv, test_csv"),
    ({"train_csv": "a.csv", "val_csv": "b.csv"}, "missing: test_csv"),
    ({"train_csv": "a.csv", "csv": "all.csv"}, "not both"),
])
def test_neither_or_both_forms_is_a_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        own_data_splits(**kwargs)


# --- into SpamDataset -------------------------------------------------------------------------

def test_three_classes_through_spam_datasets(three_files):
    train, val, test, names = own_data_splits(*three_files)
    before = train.copy()
    train_ds, val_ds, test_ds = spam_datasets(train, val, test, get_tokenizer(), context_length=1024)
    assert train_ds.num_classes == len(names) == 3
    assert set(train_ds.labels) == {0, 1, 2} and set(test_ds.labels) <= {0, 1, 2}
    ids, label = val_ds[0]
    assert label.item() == 2 and len(ids) == train_ds.max_length
    pd.testing.assert_frame_equal(train, before)


def test_dataset_errors_name_the_file_line(three_files):
    train, _, _, _ = own_data_splits(*three_files)
    broken = train.copy()
    broken.loc[3, "Text"] = " "
    with pytest.raises(DataError, match=r"train\.csv, line 5: the text is empty"):
        SpamDataset(broken, get_tokenizer())


# ------------------------------------------------------------------ through finetune and classify


def _three_class_csv(path, rows: int = 60):
    words = {"sports": "goal match team score", "music": "song band guitar album", "food": "pizza bread soup salad"}
    lines = ["Label,Text"]
    for i in range(rows):
        label = list(words)[i % 3]
        lines.append(f"{label},{words[label]} number {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_finetune_and_classify_with_three_classes(tmp_path, monkeypatch, capsys):
    from gptlib.cli import main

    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path / "home"))
    data = _three_class_csv(tmp_path / "topics.csv")
    out = tmp_path / "run"
    code = main(["finetune", "--csv", str(data), "--model-size", "tiny", "--weights", "random", "--epochs", "1",
                 "--output", str(out), "--figures", "none", "--no-progress"])
    assert code == 0
    assert "3 classes (food, music, sports)" in capsys.readouterr().out
    import torch

    checkpoint = torch.load(out / "classifier.pth", weights_only=True)
    assert checkpoint["class_names"] == ["food", "music", "sports"]
    assert checkpoint["model_state_dict"]["out_head.weight"].shape[0] == 3
    assert main(["classify", str(out / "classifier.pth"), "a new song by the band"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("food", "music", "sports"))


def test_a_label_training_never_saw_is_one_line_naming_file_and_line(tmp_path, monkeypatch, capsys):
    from gptlib.cli import main

    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path / "home"))
    train = _three_class_csv(tmp_path / "train.csv", 30)
    val = tmp_path / "val.csv"
    val.write_text("Label,Text\nsports,a goal\nweather,rain today\n", encoding="utf-8")
    code = main(["finetune", "--train-csv", str(train), "--val-csv", str(val), "--test-csv", str(train),
                 "--model-size", "tiny", "--weights", "random", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "val.csv line 3" in err and "'weather'" in err


@pytest.mark.parametrize("content, label, text", [
    ("label,body\nspam,hi there\n", "label", "body"),
    ("message,category\nhi there,spam\n", "category", "message"),
    ("Text,class,Label\nhi there,x,spam\n", "Label", "Text"),  # the exact name wins over a spelling
])
def test_common_header_spellings_are_taken_and_reported(tmp_path, content, label, text):
    """A CSV exported from another tool rarely says exactly Label,Text; the frame says which
    columns it read."""
    df = read_labeled_csv(write(tmp_path, "mine.csv", content))
    assert df.attrs["columns"] == {"Label": label, "Text": text}
    assert (df["Label"].tolist(), df["Text"].tolist()) == (["spam"], ["hi there"])


def test_the_assignments_three_class_csv_is_taken_by_the_cli(tmp_path, capsys, offline):
    from gptlib.cli import main

    csv = Path(__file__).parents[1] / "notebooks" / "assignments" / "data" / "support_messages.csv"
    code = main(["finetune", "--csv", str(csv), "--model-size", "gpt2-tiny (test)", "--weights", "random",
                 "--epochs", "1", "--train-limit", "16", "--output", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "3 classes (billing, other, tech)" in out
    assert "(columns 'category' as Label, 'message' as Text)" in out

