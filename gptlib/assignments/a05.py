"""Checks of assignment 5: your own data with more than two classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import gptlib.train as train
from gptlib.assignments import inputs
from gptlib.assignments.feedback import fail, number, ok, plain_dict, plain_list
from gptlib.assignments.profiles import active_profile
from gptlib.assignments.student import call
from gptlib.assignments.verify import verified_run
from gptlib.tokenizer import get_tokenizer

DATA = {"path": "data/support_messages.csv", "text": "message", "label": "category"}
NEW_TICKETS = ["I was charged twice for my subscription this month",
               "The app crashes every time I open the settings page",
               "Do you have an office in Lisbon?", "My invoice shows the wrong address",
               "Login fails with error 500 since this morning"]


def make_label_map(make_label_map: Any) -> None:
    """``make_label_map(categories)``: each name its own id 0..K-1, in sorted order of the names."""
    cases = [["tech", "billing", "other", "tech", "billing"], ["b", "a"], ["zeta", "alpha", "mid", "alpha", "beta"]]
    g = inputs.rng(7)
    words = ["refund", "login", "crash", "invoice", "shipping", "account", "privacy", "other", "billing"]
    cases.append([g.choice(words[: g.randint(3, len(words))]) for _ in range(g.randint(4, 12))])
    for categories in cases:
        got = plain_dict(call(make_label_map, "make_label_map", list(categories)), "make_label_map(categories)",
                         "from each category name to its class id")
        names = sorted(set(categories))
        if sorted(got) != names:
            fail(f"make_label_map({categories}) has the keys {sorted(got)}; it needs each category name once.")
        ids = [got[n] for n in names]
        if sorted(ids) != list(range(len(names))):
            fail(f"make_label_map({categories}) gives the ids {sorted(ids)}; use 0 .. K-1, each once: "
                 "cross-entropy and a head with K outputs expect exactly those.")
        if ids != list(range(len(names))):
            fail(f"make_label_map({categories}) numbers the names in another order; sort them first, so "
                 "the ids do not depend on the order of the rows (and match the classifier's class order).")
    ok("make_label_map gives the sorted category names the ids 0 .. K-1.")


def support_table(path: str, text: str, label: str) -> pd.DataFrame:
    """The task's table, read by the check: the CSV with its columns renamed."""
    raw = pd.read_csv(Path(path))
    return raw.rename(columns={text: "Text", label: "Label"})[["Text", "Label"]]


def support_run(support_run: Any, path: str = DATA["path"], text: str = DATA["text"],
                label: str = DATA["label"]) -> None:
    """The run on the support messages, one output per category, verified."""
    frame = support_table(path, text, label)
    names = sorted(frame["Label"].astype(str).str.strip().unique())
    classes = getattr(support_run, "class_names", None)
    if isinstance(classes, list) and classes != names:
        fail(f"support_run's classifier has the classes {classes}; the CSV's categories are {names}. Pass "
             "the renamed table itself (csv=frame).")
    run = verified_run(support_run, "support_run", active_profile("A05"), data={"csv": frame})
    heads = run.model.out_head.out_features
    ok(f"{len(frame)} messages split 70/10/20, a head with {heads} outputs ({', '.join(names)}); the check "
       "trained it again and got the same model.")


def confusion_matrix(confusion_matrix: Any) -> None:
    """``confusion_matrix(predictions, labels, num_classes)``: rows the true class, columns predicted."""
    cases = [([0, 1, 2, 2, 1, 0], [0, 2, 2, 1, 1, 0], 3), ([1, 1, 0, 1], [0, 1, 0, 0], 2),
             ([3, 0, 0, 2], [3, 1, 0, 2], 4)]
    g = inputs.rng(8)
    k, size = g.randint(2, 5), g.randint(5, 20)
    cases.append(([g.randrange(k) for _ in range(size)], [g.randrange(k) for _ in range(size)], k))
    for preds, labels, k in cases:
        got = plain_list(call(confusion_matrix, "confusion_matrix", list(preds), list(labels), k,
                              reference=(train.classification_metrics,)), "confusion_matrix(...)")
        rows = [[int(number(v, "a count")) for v in plain_list(r, "a row")] for r in got]
        want = [[0] * k for _ in range(k)]
        for y, p in zip(labels, preds):
            want[y][p] += 1
        if len(rows) != k or any(len(r) != k for r in rows):
            fail(f"confusion_matrix(..., num_classes={k}) has {len(rows)} rows of lengths "
                 f"{[len(r) for r in rows]}; it should be {k} x {k}.")
        if rows == want:
            continue
        hint = ""
        if rows == [list(r) for r in zip(*want)]:
            hint = " It is transposed: rows are the true class, columns the predicted one."
        elif sum(map(sum, rows)) != len(labels):
            hint = " The counts do not add up to the number of predictions."
        fail(f"confusion_matrix({preds}, {labels}, {k}) is not the table of counts (rows: true class, "
             f"columns: predicted class).{hint}")
    ok("confusion_matrix counts true class by predicted class.")


def classify_ticket(classify_ticket: Any, support_run_: Any, path: str = DATA["path"], text: str = DATA["text"],
                    label: str = DATA["label"]) -> None:
    """``classify_ticket(text)`` returns the category name the trained model predicts."""
    run = verified_run(support_run_, "support_run", active_profile("A05"),
                       data={"csv": support_table(path, text, label)})
    tokenizer = get_tokenizer()
    names = list(run.class_names)
    max_length = run.loaders[0].dataset.max_length
    device = next(run.model.parameters()).device
    drawn = inputs.rng(9).sample(list(support_table(path, text, label)["Text"].astype(str)), 3)
    for message in [*NEW_TICKETS, *drawn]:
        got = call(classify_ticket, "classify_ticket", message, reference=(train.classify_review,))
        if type(got) is not str or got not in names:
            extra = " Return the category's name, not its id (invert label_map)." if type(got) is int or (
                hasattr(got, "numel") and got.numel() == 1) else ""
            fail(f"classify_ticket({message!r}) returned {got!r}; it should return one of {names}.{extra}")
        probs = train.predict_proba(message, run.model, tokenizer, device, max_length=max_length)
        want = names[max(range(len(probs)), key=probs.__getitem__)]
        if got != want:
            fail(f"classify_ticket({message!r}) is not what the trained model (support_run.model) predicts for "
                 "it. Pad the message to the training set's max_length, as the training messages were.")
    ok("classify_ticket returns the trained model's category names for new messages.")


__all__ = ["DATA", "classify_ticket", "confusion_matrix", "make_label_map", "support_run", "support_table"]
