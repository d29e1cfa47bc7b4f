"""The SMS Spam Collection as files: where it comes from, where it is kept, and whether a file
is in its format. The one owner of the data's cache path and of the split's proportions.

The book's steps that use these (``download_and_unzip_spam_data``, ``read_sms_spam``,
``SpamDataset``) are in :mod:`gptlib.data`; this module holds what they check and look up.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

from gptlib.support.files import cache_dir, sha256_of

SPAM_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SPAM_BACKUP_URL = "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip"
SPAM_MEMBER = "SMSSpamCollection"
SPAM_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
LABELS = {"ham": 0, "spam": 1}

# The book's split: 70% training, 10% validation, the rest (20%) test.
TRAIN_FRAC, VALIDATION_FRAC = 0.7, 0.1


class DataError(ValueError):
    """A data file or table is not what the pipeline needs (the message names file and problem)."""


def split_sizes(n: int) -> tuple[int, int, int]:
    """Training, validation and test sizes of ``n`` messages split the book's way (70/10/20)."""
    train = int(n * TRAIN_FRAC)
    validation = int(n * VALIDATION_FRAC)
    return train, validation, n - train - validation


def default_data_dir() -> Path:
    """Where the SMS data is kept: ``$GPTLIB_HOME/data`` (see ``gptlib.support.files.cache_dir``)."""
    return cache_dir() / "data"


def cached_spam_file() -> Path:
    """Where a download of the SMS file lands (whether or not it is there yet)."""
    return default_data_dir() / "sms_spam_collection" / f"{SPAM_MEMBER}.tsv"


def shipped_spam_file() -> Path:
    """The copy of the SMS Spam Collection shipped inside gptlib (CC BY 4.0; see
    ``gptlib/assets/SMSSpamCollection.ATTRIBUTION.md``), checked against the book's sha256."""
    from importlib import resources

    path = Path(str(resources.files("gptlib").joinpath("assets/SMSSpamCollection")))
    if not path.is_file() or sha256_of(path) != SPAM_SHA256:
        raise DataError(f"The SMS data shipped with gptlib ({path}) is missing or changed (its sha256 is not the "
                        "book's); reinstall gptlib, or give the data with --data / GPTLIB_DATA_DIR.")
    return path


def have_book_file() -> bool:
    """Whether the book's SMS file is on disk already: a local copy, or a verified download."""
    cached = cached_spam_file()
    return find_local_copy() is not None or (cached.is_file() and sha256_of(cached) == SPAM_SHA256)


def find_local_copy(local_copy: str | Path | None = None) -> Path | None:
    """A local ``SMSSpamCollection`` file or zip, from the argument or ``$GPTLIB_DATA_DIR``."""
    candidates: list[Path] = []
    for given in (local_copy, os.environ.get("GPTLIB_DATA_DIR")):
        if not given:
            continue
        p = Path(given).expanduser()
        if p.is_dir():
            candidates += [p / SPAM_MEMBER, p / f"{SPAM_MEMBER}.tsv", p / "sms_spam_collection.zip",
                           p / "sms_spam_collection" / SPAM_MEMBER]
        else:
            candidates.append(p)
        if local_copy is not None and given is local_copy and not any(c.exists() for c in candidates):
            raise FileNotFoundError(
                f"Local copy {p} not found; pass the SMSSpamCollection file, its zip, or a folder holding one."
            )
    return next((c for c in candidates if c.is_file()), None)


def member_bytes(zip_path: Path) -> bytes:
    """The ``SMSSpamCollection`` bytes inside a zip, with errors that name the file."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = [n for n in zf.namelist() if Path(n).name == SPAM_MEMBER]
            if not names:
                raise DataError(
                    f"{zip_path} holds no {SPAM_MEMBER} (it holds {zf.namelist()[:5]}); "
                    "is it the SMS Spam Collection zip?"
                )
            return zf.read(names[0])
    except zipfile.BadZipFile as err:
        raise DataError(f"{zip_path} is not a valid zip file ({err}); delete it and download again.") from err


def raw_bytes(source: Path) -> bytes:
    """The SMS file's bytes from a raw file or from its zip."""
    return member_bytes(source) if zipfile.is_zipfile(source) else source.read_bytes()


def checked(data: bytes, source: Path, sha256: str | None) -> bytes:
    """``data`` unchanged if its sha256 is ``sha256`` (or that is None); else a DataError."""
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise DataError(
                f"{source} has sha256 {digest}, expected {sha256}: the file is damaged or a "
                "different version. Download it again (or pass sha256=None to accept it)."
            )
    return data


def utf8_text(path: Path) -> str:
    """A text file's content; a DataError naming the file, the line and the byte if it is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}: byte 0x{data[err.start]:02x} is not UTF-8 text; "
                        "save the file as UTF-8.") from None


def read_split_csv(path: str | Path):
    """A split CSV (``Label``, ``Text``) as written by ``save_splits``, every text kept as text:
    a message "NA", "null" or "None" stays that string (pandas would read it as missing)."""
    import pandas as pd

    path = Path(path)
    try:
        return pd.read_csv(io.StringIO(utf8_text(path)), keep_default_na=False, na_filter=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise DataError(f"{path} is not a readable CSV with columns Label,Text ({err}).") from None


def require_columns(df, source: str) -> None:
    """A DataError naming ``source`` unless the table has columns ``Label`` and ``Text``."""
    missing = [c for c in ("Label", "Text") if c not in df.columns]
    if missing:
        raise DataError(f"{source} needs columns 'Label' and 'Text'; it lacks {missing} (has {list(df.columns)}).")


def label_id(value: object, source: str, row: int | str, label_map: dict[str, int] | None = None) -> int:
    """A label as a class id: a name from ``label_map`` (ham/spam by default) or an integer 0, 1, ..."""
    row = row if isinstance(row, str) else f"row {row}"
    if isinstance(value, str):
        key = value.strip()
        table = label_map or LABELS
        if key in table:
            return table[key]
        if key.lstrip("-").isdigit():
            value = int(key)
        else:
            raise DataError(f"{source}, {row}: label {value!r} is not one of {list(table)} (or 0/1).")
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{source}, {row}: label {value!r} is not a class id.") from None
    if as_float != as_float or as_float < 0 or as_float != int(as_float):
        raise DataError(f"{source}, {row}: label {value!r} must be a class id 0, 1, ... (or 'ham'/'spam').")
    return int(as_float)


def check_sms_file(path: str | Path) -> Path:
    """Check that a file is in the SMS Spam Collection's format, one message per line:
    ``ham`` or ``spam``, one tab, a non-empty text, in UTF-8, with both labels present.
    Raises :class:`DataError` naming the file and the line; returns the path."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the SMSSpamCollection file inside it.")
    if not path.exists():
        raise FileNotFoundError(f"SMS data file {path} not found; run download_and_unzip_spam_data() first.")
    counts = dict.fromkeys(LABELS, 0)
    for number, text in enumerate(utf8_text(path).split("\n"), 1):
        text = text.rstrip("\r")
        if not text.strip():
            continue
        fields = text.split("\t")
        where = f"{path} line {number}"
        if len(fields) != 2:
            raise DataError(f"{where}: expected a label, one tab and the text, but found {len(fields) - 1} "
                            "tabs; a message must not contain a tab.")
        if fields[0] not in LABELS:
            raise DataError(f"{where}: the label {fields[0]!r} must be 'ham' or 'spam'.")
        if not fields[1].strip():
            raise DataError(f"{where}: the message text is empty; remove the line or add its text.")
        counts[fields[0]] += 1
    if not any(counts.values()):
        raise DataError(f"{path} holds no messages; each line should be 'ham' or 'spam', a tab, then the text.")
    missing = [label for label, n in counts.items() if n == 0]
    if missing:
        raise DataError(f"{path} has no {missing[0]!r} messages ({counts}); a spam classifier needs both classes.")
    return path
