"""Checks of assignment 4: class imbalance, and precision, recall and F1 next to accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import gptlib.train as train
from gptlib.assignments import inputs
from gptlib.assignments.channel import ReportedRun
from gptlib.assignments.feedback import close, fail, number, ok, plain_dict
from gptlib.assignments.profiles import active_profile
from gptlib.assignments.student import call
from gptlib.assignments.verify import verified_run
from gptlib.data import prepare_spam_splits
from gptlib.notebook import spam_data_file

TRAIN_LIMIT = 1045  # the size of the book's balanced training set
MAX_LENGTH = 120  # the book's padded length
METRIC_REFERENCES = (train.classification_metrics, train._predictions)
KEYS = ("accuracy", "precision", "recall", "f1")


def unbalanced_splits(profile) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The profile's messages split 70/10/20 without balancing: (train, validation, test)."""
    folder = Path(profile.work_dir) / "assignments" / "spam-unbalanced"
    files = prepare_spam_splits(spam_data_file(profile), folder, balanced=False)
    return tuple(pd.read_csv(f) for f in files)  # type: ignore[return-value]


def unbalanced_tables(profile) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The task's data, made by the check: the unbalanced split, the first TRAIN_LIMIT
    training messages."""
    train_all, val_df, test_df = unbalanced_splits(profile)
    return train_all.iloc[:TRAIN_LIMIT], val_df, test_df


def _labels(seed: int, n: int, spam_share: float) -> list[int]:
    import random

    rng = random.Random(inputs.seed_of(seed))
    return [int(rng.random() < spam_share) for _ in range(n)]


def shares(spam_share: Any, majority_accuracy: Any) -> None:
    """``spam_share(labels)`` and ``majority_accuracy(labels)`` on label lists the check makes."""
    for labels in (_labels(1, 40, 0.13), _labels(2, 25, 0.5), _labels(3, 60, 0.3), [0, 0, 1, 0]):
        share = number(call(spam_share, "spam_share", list(labels)), "spam_share(labels)")
        want = sum(labels) / len(labels)
        if not close(share, want, 1e-9):
            hint = " Give a fraction, not a percentage." if close(share, 100 * want, 1e-9) else ""
            if close(share, 1 - want, 1e-9):
                hint = " That is the share of 'not spam'; spam is label 1."
            fail(f"spam_share gives {share:.4f} for {len(labels)} labels the check made, which is not the "
                 f"share of spam among them.{hint}")
        acc = number(call(majority_accuracy, "majority_accuracy", list(labels)), "majority_accuracy(labels)")
        want = labels.count(0) / len(labels)
        if not close(acc, want, 1e-9):
            hint = ""
            if close(acc, 1 - want, 1e-9):
                hint = " That is the share of spam; the majority class is 'not spam' (0)."
            elif close(acc, 100 * want, 1e-9):
                hint = " Give a fraction, not a percentage."
            fail(f"majority_accuracy gives {acc:.4f} for {len(labels)} labels the check made, which is not "
                 f"the accuracy of always answering 'not spam'.{hint}")
    ok("spam_share and majority_accuracy are right on label lists the check made.")


def _train_labels(run: Any) -> list[int] | None:
    """The labels of the run's training messages, as the run holds them (None: unknown)."""
    if isinstance(run, ReportedRun):
        return run.train_labels
    loaders = getattr(run, "loaders", None)
    if isinstance(loaders, tuple) and loaders and hasattr(loaders[0], "dataset"):
        return [int(y) for y in loaders[0].dataset.labels]
    return None


def unbalanced_run(run_unbalanced: Any) -> None:
    """Trained on the unbalanced training messages as they are; the realistic test set."""
    profile = active_profile("A04")
    train_df, val_df, test_df = unbalanced_tables(profile)
    labels = _train_labels(run_unbalanced)
    if labels is not None:
        if len(labels) != len(train_df) or sum(labels) != int(train_df["Label"].sum()):
            fail("run_unbalanced was not trained on train_df as it is (its training set has another size or "
                 "another share of spam): pass train=train_df, without balancing it.")
    verified_run(run_unbalanced, "run_unbalanced", profile, {"max_length": MAX_LENGTH},
                 data={"train": train_df, "validation": val_df, "test": test_df},
                 hints={"max_length": "pad every message to MAX_LENGTH (max_length=MAX_LENGTH)."})
    share = train_df["Label"].mean()
    ok(f"trained on {len(train_df)} messages as they come ({share:.1%} spam); the check trained it again "
       "on the same data and got the same model.")


def _prf(preds: list[int], labels: list[int], positive: int) -> tuple[float, float, float]:
    tp = sum(p == positive and y == positive for p, y in zip(preds, labels))
    predicted = sum(p == positive for p in preds)
    actual = sum(y == positive for y in labels)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def precision_recall_f1(precision_recall_f1: Any) -> None:
    """``precision_recall_f1(predictions, labels, positive=1)`` -> (precision, recall, f1)."""
    cases = [([1, 1, 0, 0], [1, 0, 1, 0], 1), ([1, 1, 1, 0, 0], [1, 0, 0, 0, 0], 1),
             ([1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], 1), ([0, 0, 0, 0], [1, 0, 0, 0], 1),
             ([0, 1, 0, 1], [0, 1, 1, 1], 0), ([2, 1, 2, 0, 2], [2, 2, 1, 0, 2], 2)]
    g = inputs.rng(6)
    size = g.randint(6, 30)
    cases.append(([g.randint(0, 1) for _ in range(size)], [g.randint(0, 1) for _ in range(size)], 1))
    for preds, labels, positive in cases:
        shown = f"precision_recall_f1({preds}, {labels}, positive={positive})"
        try:
            got = call(precision_recall_f1, "precision_recall_f1", list(preds), list(labels), positive,
                       reference=METRIC_REFERENCES)
        except AssertionError as err:
            if "ZeroDivisionError" in str(err):
                fail(f"{shown} divides by zero: when no message is predicted (or is) positive, use 0.0 for "
                     "that ratio, as gptlib.train.classification_metrics does.")
            raise
        if type(got) not in (tuple, list) or len(got) != 3:
            fail("precision_recall_f1 should return three numbers (precision, recall, f1).")
        values = [number(v, n) for v, n in zip(got, ("precision", "recall", "f1"))]
        want = _prf(preds, labels, positive)
        if all(close(g, w, 1e-9) for g, w in zip(values, want)):
            continue
        hint = ""
        if close(values[0], want[1], 1e-9) and close(values[1], want[0], 1e-9) and want[0] != want[1]:
            hint = (" Precision and recall are swapped: precision = TP / predicted positive, recall = TP / "
                    "actually positive.")
        elif close(values[2], (values[0] + values[1]) / 2, 1e-9) and not close(values[2], want[2], 1e-9):
            hint = " F1 is the harmonic mean 2PR/(P+R), not the average."
        elif positive != 1:
            hint = " Use the `positive` argument rather than assuming class 1."
        fail(f"{shown} returned {tuple(round(v, 4) for v in values)}, which is not (precision, recall, f1) "
             f"of class {positive}.{hint}")
    ok("precision_recall_f1 is right, also when nothing is predicted positive and for other classes.")


def spam_metrics(spam_metrics: Any) -> None:
    """``spam_metrics(model, loader)`` -> dict of accuracy, precision, recall, F1 (spam = 1)."""
    frame = inputs.messages(24, offset=100)
    for seed in (2, 8, 13):
        model = inputs.tiny_classifier(seed=seed)
        loader = inputs.loader(frame, batch_size=5)
        ref = train.classification_metrics(loader, model, "cpu")
        got = plain_dict(call(spam_metrics, "spam_metrics", model, loader, reference=METRIC_REFERENCES),
                         "spam_metrics(model, loader)", "with the keys 'accuracy', 'precision', 'recall', 'f1'")
        for key in KEYS:
            if key not in got:
                fail(f"spam_metrics's dict has no {key!r}; it needs {list(KEYS)}.")
            value = number(got[key], f"spam_metrics(...)[{key!r}]")
            if not close(value, ref[key], 1e-9):
                hint = " Give fractions, not percentages." if close(value, 100 * ref[key], 1e-9) else \
                    " Compute it from the model's predictions for the whole loader (collect_predictions)."
                what = "the model's accuracy" if key == "accuracy" else f"the {key} of spam (class 1)"
                fail(f"spam_metrics(...)[{key!r}] is not {what} for a model and loader the check made.{hint}")
    ok("spam_metrics is right for models and loaders the check made.")


__all__ = ["MAX_LENGTH", "TRAIN_LIMIT", "precision_recall_f1", "shares", "spam_metrics", "unbalanced_run",
           "unbalanced_splits", "unbalanced_tables"]
