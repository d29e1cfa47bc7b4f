"""The SMS Spam Collection, from download to padded batches, with the book's names.

The book's steps, in order::

    download_and_unzip_spam_data(url, zip_path, extracted_path, data_file_path)
    df = read_sms_spam(data_file_path)          # 5,572 rows, the book's way
    balanced_df = create_balanced_dataset(df)   # 747 ham + 747 spam
    balanced_df = map_labels(balanced_df)       # ham -> 0, spam -> 1 (safe to re-run)
    train_df, validation_df, test_df = random_split(balanced_df, 0.7, 0.1)
    save_splits(train_df, validation_df, test_df, folder)
    train_dataset = SpamDataset(folder / "train.csv", tokenizer)   # max_length 120

No function here changes the DataFrame it is given, so re-running a notebook cell gives the
same result.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gptlib.support.download import DownloadError, download_file
from gptlib.support.files import atomic_write_bytes, sha256_of
from gptlib.support.sms_files import (  # noqa: F401  (the file checks, re-exported for readers)
    LABELS,
    SPAM_BACKUP_URL,
    SPAM_MEMBER,
    SPAM_SHA256,
    SPAM_URL,
    TRAIN_FRAC,
    VALIDATION_FRAC,
    DataError,
    check_sms_file,
    checked,
    default_data_dir,
    find_local_copy,
    label_id,
    member_bytes,
    raw_bytes,
    read_split_csv,
    require_columns,
    shipped_spam_file,
)
from gptlib.tokenizer import END_OF_TEXT_ID

CLASS_NAMES = ("not spam", "spam")


def download_and_unzip_spam_data(
    url: str = SPAM_URL,
    zip_path: str | Path | None = None,
    extracted_path: str | Path | None = None,
    data_file_path: str | Path | None = None,
    *,
    backup_url: str | None = SPAM_BACKUP_URL,
    local_copy: str | Path | None = None,
    sha256: str | None = SPAM_SHA256,
    timeout: float = 60.0,
    progress: bool = True,
    verbose: bool = True,
) -> Path:
    """Make sure the SMS data file exists at ``data_file_path``; return that path. The book's
    signature; every argument has a default (under ``default_data_dir()``). Work already done
    is skipped. A local copy (``local_copy`` or ``$GPTLIB_DATA_DIR``: the raw SMSSpamCollection,
    its zip, or a folder holding one) is used instead of any download. The extracted file
    must have the expected sha256; it is written atomically, so a failed run never leaves a
    file that a later run takes as complete.
    """
    say = print if verbose else (lambda *a, **k: None)
    extracted_path = Path(extracted_path) if extracted_path else default_data_dir() / "sms_spam_collection"
    zip_path = Path(zip_path) if zip_path else default_data_dir() / "sms_spam_collection.zip"
    data_file_path = Path(data_file_path) if data_file_path else extracted_path / f"{SPAM_MEMBER}.tsv"

    # A copy passed in is always checked: a wrong one is an error even with a good file in place.
    given = find_local_copy(local_copy) if local_copy is not None else None
    if given is None and data_file_path.exists():
        if sha256 is None or sha256_of(data_file_path) == sha256:
            say(f"{data_file_path} already exists. Skipping download and extraction.")
            return data_file_path
        say(f"{data_file_path} does not have the expected checksum; fetching it again.")

    source = given or find_local_copy()
    if source is not None:
        raw = checked(raw_bytes(source), source, sha256)
        if data_file_path.is_file() and data_file_path.read_bytes() == raw:
            say(f"{data_file_path} already holds the local copy {source}.")
            return data_file_path
        atomic_write_bytes(data_file_path, raw)
        say(f"Used local copy {source}; saved as {data_file_path}")
        return data_file_path

    urls = [url] + ([backup_url] if backup_url and backup_url != url else [])
    try:
        download_file(urls, zip_path, timeout=timeout, progress=progress)
    except DownloadError as err:
        raise DownloadError(
            f"{err} Alternatively put the raw {SPAM_MEMBER} file (or the zip) in a folder and "
            "set GPTLIB_DATA_DIR to it, or give it with --data (local_copy=... in Python).",
            err.tried, err.http_status) from None
    try:
        raw = checked(member_bytes(zip_path), zip_path, sha256)
    except DataError:
        zip_path.unlink(missing_ok=True)  # never keep a bad zip as if it were complete
        raise
    atomic_write_bytes(data_file_path, raw)
    say(f"File downloaded and saved as {data_file_path}")
    return data_file_path


def read_sms_spam(path: str | Path, strict: bool = False) -> pd.DataFrame:
    """Read the tab-separated SMS file into a DataFrame with columns ``Label`` and ``Text``.

    ``strict=False`` reads it the book's way (pandas' default quoting). 54 messages begin
    with an unescaped double quote, and the default CSV quoting then swallows the text up to
    the next quote, merging lines: the book sees 5,572 rows (4,825 ham, 747 spam). Its split,
    and so its numbers, depend on this. ``strict=True`` turns quoting off and keeps every
    one of the file's 5,574 messages (4,827 ham, 747 spam). Texts such as ``NA`` or ``null``
    stay text. The file is checked line by line first (:func:`check_sms_file`), so a
    problem is reported with its line number.
    """
    path = check_sms_file(path)
    kwargs = {"quoting": csv.QUOTE_NONE} if strict else {}
    return pd.read_csv(path, sep="\t", header=None, names=["Label", "Text"], dtype=str,
                       keep_default_na=False, na_filter=False, **kwargs)


def create_balanced_dataset(df: pd.DataFrame, random_state: int = 123) -> pd.DataFrame:
    """Undersample 'ham' to the number of 'spam' messages (ham first, then spam), as the book does.

    Shown in notebooks/02_data_and_padding.
    """
    require_columns(df, "the DataFrame")
    labels = df["Label"].map(_label_name)
    num_spam = int((labels == "spam").sum())
    if num_spam == 0:
        raise DataError("The DataFrame has no 'spam' messages to balance against.")
    ham_subset = df[labels == "ham"].sample(num_spam, random_state=random_state)
    return pd.concat([ham_subset, df[labels == "spam"]])


def _label_name(label: object) -> str:
    if label in (0, 1) and not isinstance(label, str):
        return "spam" if int(label) == 1 else "ham"
    return str(label)


def map_labels(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with labels ham -> 0 and spam -> 1. Re-running it is harmless (0/1 stay 0/1)."""
    out = df.copy()
    out["Label"] = [label_id(v, "the DataFrame", i) for i, v in enumerate(df["Label"])]
    return out


def random_split(df: pd.DataFrame, train_frac: float, validation_frac: float,
                 random_state: int = 123) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle once, then cut into train / validation / test (the rest), as the book does.

    Shown in notebooks/02_data_and_padding.
    """
    if not (0 < train_frac < 1 and 0 <= validation_frac < 1 and train_frac + validation_frac <= 1):
        raise ValueError(
            f"train_frac ({train_frac}) and validation_frac ({validation_frac}) must be fractions "
            "that add up to at most 1."
        )
    shuffled = df.sample(frac=1, random_state=random_state).reset_index(drop=True)
    train_end = int(len(shuffled) * train_frac)
    validation_end = train_end + int(len(shuffled) * validation_frac)
    return shuffled[:train_end], shuffled[train_end:validation_end], shuffled[validation_end:]


def save_splits(train_df: pd.DataFrame, validation_df: pd.DataFrame, test_df: pd.DataFrame,
                folder: str | Path = ".") -> tuple[Path, Path, Path]:
    """Write ``train.csv``, ``validation.csv`` and ``test.csv`` (atomically); return their paths."""
    folder = Path(folder)
    paths = []
    for name, frame in (("train", train_df), ("validation", validation_df), ("test", test_df)):
        paths.append(atomic_write_bytes(folder / f"{name}.csv", frame.to_csv(index=None).encode()))
    return tuple(paths)  # type: ignore[return-value]


def prepare_spam_splits(data_file: str | Path | None = None, folder: str | Path | None = None,
                        balanced: bool = True, strict: bool = False) -> tuple[Path, Path, Path]:
    """The book's whole data preparation: read, balance, map labels, split 70/10/20, save CSVs."""
    data_file = Path(data_file) if data_file else download_and_unzip_spam_data()
    df = read_sms_spam(data_file, strict=strict)
    if balanced:
        df = create_balanced_dataset(df)
    if len(df) < 10:
        raise DataError(f"{data_file} gives only {len(df)} messages{' once balanced' if balanced else ''}; the "
                        "70/10/20 split needs at least 10 (with balancing: 5 spam and 5 ham) to leave a "
                        "validation message.")
    splits = random_split(map_labels(df), TRAIN_FRAC, VALIDATION_FRAC)
    return save_splits(*splits, folder=folder or data_file.parent)


class SpamDataset(Dataset):
    """Token ids and labels of one split, padded with ``<|endoftext|>`` on the right.

    ``max_length=None`` pads to the longest message of this split (120 tokens on the book's
    training split); give the training length to the validation and test sets, which are then
    truncated to it. ``padding="batch"`` leaves messages unpadded here, and
    :func:`pad_collate` pads each batch to its own longest message instead.
    ``csv_file`` may also be a DataFrame. Texts are encoded with special tokens treated as
    plain text, so the pad id 50256 never occurs inside a message: trailing 50256s are padding.

    Shown in notebooks/02_data_and_padding.
    """

    def __init__(self, csv_file: str | Path | pd.DataFrame, tokenizer, max_length: int | None = None,
                 pad_token_id: int = END_OF_TEXT_ID, padding: str = "max_length",
                 label_map: dict[str, int] | None = None):
        if padding not in ("max_length", "batch"):
            raise ValueError(f"padding must be 'max_length' (the book's) or 'batch'; got {padding!r}.")
        if isinstance(csv_file, pd.DataFrame):
            source, frame = csv_file.attrs.get("source", "the DataFrame"), csv_file.copy()
        else:
            source = str(csv_file)
            if not Path(csv_file).exists():
                raise FileNotFoundError(f"{csv_file} not found; create the splits with save_splits() first.")
            frame = read_split_csv(csv_file)  # UTF-8 checked; "NA" and "null" stay text
        require_columns(frame, source)
        if len(frame) == 0:
            raise DataError(f"{source} has no rows: an empty split cannot be used for training or evaluation.")
        texts = frame["Text"]
        # Frames from gptlib.support.own_data carry the file line of each row: errors then name it.
        if isinstance(csv_file, pd.DataFrame) and "line" in frame.columns:
            rows = [f"line {n}" for n in frame["line"]]
        else:
            rows = [f"row {i}" for i in range(len(frame))]
        for row, text in zip(rows, texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{source}, {row}: the text is empty or missing ({text!r}).")
        frame["Label"] = [label_id(v, source, row, label_map) for row, v in zip(rows, frame["Label"])]
        self.data = frame.reset_index(drop=True)
        self.pad_token_id = pad_token_id
        self.padding = padding
        encoded = [tokenizer.encode(t, disallowed_special=()) for t in texts]
        if max_length is None:
            self.max_length = max(len(e) for e in encoded)
        else:
            if max_length < 1:
                raise ValueError(f"max_length must be at least 1; got {max_length}.")
            self.max_length = max_length
            encoded = [e[:max_length] for e in encoded]
        self.token_ids = encoded
        self.lengths = [len(e) for e in encoded]
        self.labels = self.data["Label"].tolist()
        if padding == "max_length":
            self.encoded_texts = [e + [pad_token_id] * (self.max_length - len(e)) for e in encoded]
        else:
            self.encoded_texts = [list(e) for e in encoded]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.encoded_texts[index], dtype=torch.long),
                torch.tensor(self.labels[index], dtype=torch.long))

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_classes(self) -> int:
        """Highest class id + 1 (a split may lack some class; pass the head's width explicitly then)."""
        return max(self.labels) + 1


def spam_datasets(train: str | Path | pd.DataFrame, validation: str | Path | pd.DataFrame,
                  test: str | Path | pd.DataFrame, tokenizer, max_length: int | None = None,
                  padding: str = "max_length", context_length: int | None = None,
                  label_map: dict[str, int] | None = None,
                  pad_token_id: int = END_OF_TEXT_ID) -> tuple[SpamDataset, SpamDataset, SpamDataset]:
    """The three splits as datasets, the book's way: the training set sets ``max_length`` (its
    longest message unless given, capped at ``context_length``), and validation and test are
    cut to it (and, with ``padding="max_length"``, padded to it)."""
    kw = {"padding": padding, "label_map": label_map, "pad_token_id": pad_token_id}
    train_ds = SpamDataset(train, tokenizer, max_length=max_length, **kw)
    if context_length is not None and train_ds.max_length > context_length:
        train_ds = SpamDataset(train, tokenizer, max_length=context_length, **kw)
    val_ds, test_ds = (SpamDataset(split, tokenizer, max_length=train_ds.max_length, **kw)
                       for split in (validation, test))
    return train_ds, val_ds, test_ds


def pad_collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_token_id: int = END_OF_TEXT_ID
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a batch, right-padding each message with ``pad_token_id`` to the batch's longest.

    Where each message really ends is carried by the padding itself (the pad id never occurs
    inside a message): see ``gptlib.classifier.last_real_index``.
    """
    longest = max(len(ids) for ids, _ in batch)
    inputs = torch.full((len(batch), longest), pad_token_id, dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        inputs[row, : len(ids)] = ids
    return inputs, torch.stack([label for _, label in batch])


def create_data_loaders(train_dataset: SpamDataset, val_dataset: SpamDataset, test_dataset: SpamDataset,
                        batch_size: int = 8, num_workers: int = 0, seed: int | None = 123,
                        train_batch_sampler: Sampler[list[int]] | None = None
                        ) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The book's loaders: ``torch.manual_seed(seed)``, then train shuffled with ``drop_last``.

    Batches of datasets made with ``padding="batch"`` are padded per batch by ``pad_collate``.
    ``train_batch_sampler`` replaces the training loader's shuffled batches (the speed-ups'
    length grouping, ``gptlib.speed.batching``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    if batch_size > len(train_dataset):
        raise ValueError(
            f"batch_size {batch_size} is larger than the training set ({len(train_dataset)} "
            "messages): with drop_last=True there would be no training batch at all."
        )
    if seed is not None:
        torch.manual_seed(seed)

    def loader(ds: SpamDataset, train: bool) -> DataLoader:
        collate = partial(pad_collate, pad_token_id=ds.pad_token_id) if ds.padding == "batch" else None
        if train and train_batch_sampler is not None:
            return DataLoader(ds, batch_sampler=train_batch_sampler, num_workers=num_workers, collate_fn=collate)
        return DataLoader(ds, batch_size=batch_size, shuffle=train, num_workers=num_workers,
                          drop_last=train, collate_fn=collate)

    return loader(train_dataset, True), loader(val_dataset, False), loader(test_dataset, False)
