"""Your own labeled CSV files, with any number of classes, ready for ``spam_datasets``.

The book fine-tunes GPT-2 on two classes (ham, spam); its IMDb bonus shows the same model on
another data set. These functions take that step for any CSV with a header naming the columns
``Label`` and ``Text``, or a common spelling of them such as ``category``/``message`` (other
columns are ignored)::

    train_df, val_df, test_df, class_names = own_data_splits("train.csv", "val.csv", "test.csv")
    # or one file, split 70/10/20 the book's way:
    train_df, val_df, test_df, class_names = own_data_splits(csv="reviews.csv", split=random_split)
    train_ds, val_ds, test_ds = spam_datasets(train_df, val_df, test_df, tokenizer)

The class ids are the positions in ``class_names`` (sorted names; numerically when every label
is a whole number, so labels 1, 2, 3 become ids 0, 1, 2). Every frame keeps a ``line`` column
with the file line each row starts on, so an error can point at the line to fix.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from gptlib.support.sms_files import TRAIN_FRAC, VALIDATION_FRAC, DataError

QUOTING_HINT = ('Put a text that holds commas in double quotes, right after the comma (no space): '
                'spam,"Win cash, now"')


def _decoded(path: Path, role: str) -> str:
    """The file's text, read as UTF-8 (a byte-order mark is allowed)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"The {role} file {path} was not found; check the path.") from None
    except IsADirectoryError:
        raise DataError(f"The {role} file {path} is a folder; give the path of a CSV file.") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: byte {data[err.start]:#04x} is not UTF-8 text. Save the file "
            "as UTF-8 (Excel: 'CSV UTF-8'; a text editor: encoding UTF-8) and try again."
        ) from None


def _records(text: str, path: Path):
    """``(start line, fields)`` of each non-blank CSV record; a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0  # the last line of the previous record
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(
                f"{path} line {start}: this row cannot be read as CSV ({err}). A text that "
                "begins with a double quote must end with one, and a quote inside a quoted text "
                'is written twice: ham,"She said ""hi"" to me"'
            ) from None
        end = reader.line_num
        if any(f.strip() for f in fields):
            yield start, fields


# Header spellings taken for each column (compared without case): a CSV exported from another
# tool rarely says exactly Label and Text.
SPELLINGS = {
    "Label": ("label", "labels", "class", "category", "target", "y", "sentiment", "intent", "tag"),
    "Text": ("text", "message", "sms", "content", "review", "sentence", "body", "comment", "document", "x"),
}


def _column_positions(header: list[str], path: Path) -> dict[str, int]:
    """Where the Label and Text columns are: exactly named, else by a common spelling."""
    names = [h.strip() for h in header]
    out = {}
    for role, spellings in SPELLINGS.items():
        found = [i for i, name in enumerate(names) if name.lower() in spellings]
        exact = [i for i in found if names[i] == role]
        if len(exact) > 1 or (not exact and len(found) > 1):
            clash = ", ".join(repr(names[i]) for i in (exact or found))
            raise DataError(f"{path}: the header has more than one column that could be the {role.lower()} "
                            f"({clash}); rename the one to use to {role!r}.")
        if exact or found:
            out[role] = (exact or found)[0]
    missing = [role for role in SPELLINGS if role not in out]
    if missing:
        raise DataError(
            f"{path}: the header has the columns {names}, but none of them is the "
            f"{' or the '.join(m.lower() for m in missing)} column. Name them 'Label' and 'Text' (also taken: "
            f"{', '.join(SPELLINGS['Label'][1:4])} ...; {', '.join(SPELLINGS['Text'][1:4])} ...), e.g. a "
            "first line Label,Text"
        )
    return out


def read_labeled_csv(path: str | Path, role: str = "training") -> pd.DataFrame:
    """Read one labeled CSV file into columns ``Label`` (str), ``Text`` and ``line``.

    ``line`` is the file line each row starts on (the header is line 1), so later errors can
    name it. Read with the csv module, not pandas: texts such as ``NA`` or ``null`` stay text,
    and every problem (encoding, a stray comma, an empty label or text) is reported with the
    file and line to fix. ``role`` ("training", "validation", ...) only words the messages.
    Blank lines are skipped.
    """
    path = Path(path)
    records = _records(_decoded(path, role), path)
    header = next(records, None)
    if header is None:
        raise DataError(f"The {role} file {path} is empty; it needs a header line Label,Text "
                        "and then one line per example.")
    positions = _column_positions(header[1], path)
    width = len(header[1])
    rows = []
    for line, fields in records:
        if len(fields) > width:
            raise DataError(
                f"{path} line {line}: this row has {len(fields)} fields but the header has "
                f"{width} columns; the text probably holds an unquoted comma. {QUOTING_HINT}"
            )
        if len(fields) <= max(positions.values()):
            raise DataError(f"{path} line {line}: this row has only {len(fields)} field(s) "
                            f"but the header has {width} columns; is a comma missing?")
        label, text = fields[positions["Label"]].strip(), fields[positions["Text"]]
        if not label:
            raise DataError(f"{path} line {line}: the label is empty; give every row a label.")
        if not text.strip():
            raise DataError(f"{path} line {line}: the text is empty; remove the row or add its text.")
        rows.append((label, text, line))
    if not rows:
        raise DataError(f"The {role} file {path} has a header but no examples below it.")
    frame = pd.DataFrame(rows, columns=["Label", "Text", "line"])
    frame.attrs["source"] = str(path)
    frame.attrs["columns"] = {role: header[1][i].strip() for role, i in positions.items()}
    return frame


def _is_whole_number(label: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", label) is not None


def class_names_from(train_df: pd.DataFrame) -> list[str]:
    """The class names of the training data, in class-id order.

    Sorted, so the same file always gives the same ids; numerically when every label is a
    whole number ("2" before "10"). Only the training data decides the classes: the model
    cannot learn a class it never sees.
    """
    source = train_df.attrs.get("source", "the training data")
    labels = {str(v).strip() for v in train_df["Label"]}
    if all(_is_whole_number(v) for v in labels):
        names = sorted(labels, key=lambda v: (int(v), v))
    else:
        names = sorted(labels)
    if len(names) < 2:
        has = f"only {names[0]!r}" if names else "no labels"
        raise DataError(f"A classifier needs at least 2 classes; {source} has {has}.")
    return names


def _with_class_ids(frame: pd.DataFrame, class_names: list[str], unseen: str) -> pd.DataFrame:
    """A copy of ``frame`` with each label replaced by its class id; ``unseen`` words the error."""
    ids = {name: i for i, name in enumerate(class_names)}
    for label, line in zip(frame["Label"], frame["line"]):
        if label not in ids:
            raise DataError(f"{frame.attrs.get('source')} line {line}: label {label!r} {unseen} "
                            f"(its classes: {', '.join(class_names)}).")
    out = frame.reset_index(drop=True)  # a new frame: the caller's stays as it was
    out["Label"] = [ids[label] for label in frame["Label"]]
    out.attrs = dict(frame.attrs)
    return out


def own_data_splits(train_csv: str | Path | None = None, val_csv: str | Path | None = None,
                    test_csv: str | Path | None = None, *, csv: str | Path | None = None,
                    random_state: int = 123, split: Callable[..., tuple] | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """Train / validation / test frames (``Label`` as class id, ``Text``, ``line``) and the class names.

    Give either the three files, or one file ``csv=`` that is shuffled and split 70/10/20 as
    the book does (``split``: the book's ``gptlib.data.random_split``, same ``random_state``,
    same result every run). The class
    names come from the training data; a label in validation or test that training lacks is
    an error (the model could never predict it), a class missing from validation or test is not.
    """
    files = (train_csv, val_csv, test_csv)
    if csv is not None:
        if any(f is not None for f in files):
            raise ValueError("Give either three files (train_csv, val_csv, test_csv) or one "
                             "file csv=... to split 70/10/20, not both.")
        if split is None:
            raise ValueError("Splitting one file needs the book's split: pass split=gptlib.data.random_split.")
        whole = read_labeled_csv(csv, role="data")
        splits = split(whole, TRAIN_FRAC, VALIDATION_FRAC, random_state=random_state)
        for part, frame in zip(("training", "validation", "test"), splits):
            if len(frame) == 0:
                raise DataError(
                    f"{csv} has too few rows ({len(whole)}): split 70/10/20, it leaves the {part} "
                    "part empty. It needs at least 10 rows (and far more to learn anything)."
                )
            frame.attrs["source"] = str(csv)
        unseen = ("has so few examples that none landed in the 70% training part; add more "
                  "examples of it, or remove it")
    elif any(f is None for f in files):
        missing = [n for n, f in zip(("train_csv", "val_csv", "test_csv"), files) if f is None]
        raise ValueError(f"Give all three files train_csv, val_csv and test_csv (missing: "
                         f"{', '.join(missing)}), or one file csv=... to split 70/10/20.")
    else:
        splits = tuple(read_labeled_csv(f, role) for f, role in
                       zip(files, ("training", "validation", "test")))
        unseen = f"does not occur in the training data {train_csv}"
    class_names = class_names_from(splits[0])
    train_df, val_df, test_df = (_with_class_ids(f, class_names, unseen) for f in splits)
    return train_df, val_df, test_df, class_names
