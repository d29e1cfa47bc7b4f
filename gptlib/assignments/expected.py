"""What students should see: the numbers the assignments' runs and functions give, per profile.

The teacher's guide (notebooks/assignments/README.md) tabulates them; this module measures
them, with the teacher's solutions, one item at a time (cheapest first), so that a long
profile can be stopped after the items that fit::

    python -m gptlib.assignments.expected smoke                   # every item, about 2 minutes
    python -m gptlib.assignments.expected offline data a05 a01_63  # only these items

Each item prints one line of JSON (its numbers and the seconds it took) and appends it to
``--out`` when given. Accuracies and shares carry a 95% Wilson interval over the messages
they are counted on (:func:`wilson`), which is the noise band of one run on that many
messages; a loss has no such band here (one seed per run).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptlib.assignments.a01 import EXERCISE_61_MESSAGES


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a share ``successes / n`` (never zero wide)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def share(successes: float, n: int) -> dict[str, Any]:
    """A share in percent with its Wilson interval and the count it rests on."""
    low, high = wilson(successes, n)
    return {"pct": round(100 * successes / n, 2), "wilson95": [round(100 * low, 1), round(100 * high, 1)], "n": n}


def _run_numbers(run: Any) -> dict[str, Any]:
    sizes = [len(loader.dataset) for loader in run.loaders]
    out = {f"{s} acc": share(round(run.accuracy[s] * n), n) for s, n in zip(("train", "validation", "test"), sizes)}
    out.update({f"{s} loss": round(run.loss[s], 4) for s in ("train", "validation", "test")})
    out.update({"trainable": run.trainable_params, "run seconds": round(run.seconds, 1)})
    return out


def _pads(dataset: Any, pad: int) -> dict[str, Any]:
    """Share of messages whose last position is a pad, and the mean distance from the last
    real token to the last position."""
    rows = [list(map(int, dataset[i][0])) for i in range(len(dataset))]
    ends = sum(r[-1] == pad for r in rows)
    gaps = []
    for r in rows:
        n = len(r)
        while n > 1 and r[n - 1] == pad:
            n -= 1
        gaps.append(len(r) - n)
    return {"padded length": len(rows[0]), "last position is a pad": share(ends, len(rows)),
            "mean tokens from last real token to position -1": round(sum(gaps) / len(gaps), 1)}


class Measure:
    """The items of one profile; runs made once and reused between items."""

    def __init__(self, profile_name: str):
        self.name = profile_name
        self.cache: dict[str, Any] = {}

    def profile(self, assignment: str):
        from gptlib.assignments.profiles import assignment_profile

        return assignment_profile(assignment, self.name)

    def run(self, key: str, assignment: str, **settings: Any):
        from gptlib.assignments.runner import run_experiment

        if key not in self.cache:
            self.cache[key] = run_experiment(self.profile(assignment), name=key, quiet=True, progress=False, **settings)
        return self.cache[key]

    # -- the items, cheapest first ----------------------------------------------------------
    def data(self) -> dict[str, Any]:
        """Numbers that need no training: padding, first tokens, the unbalanced split, A05's split."""
        from gptlib.assignments.a04 import TRAIN_LIMIT, unbalanced_splits
        from gptlib.assignments.runner import experiment_config
        from gptlib.finetune import build_datasets
        from gptlib.model import get_config
        from gptlib.tokenizer import END_OF_TEXT_ID, get_tokenizer

        profile = self.profile("A01")
        context = get_config(profile.model_size)["context_length"]
        out: dict[str, Any] = {}
        for label, settings in (("book padding", {}),
                                ("6.1 padding", {"max_length": context, "train_limit": EXERCISE_61_MESSAGES})):
            cfg = experiment_config(profile, **settings)
            train, _, test, _ = build_datasets(cfg, get_tokenizer(), Path(cfg.output) / "data", context, verbose=False)
            out[f"{label}: training set"] = {"messages": len(train), **_pads(train, END_OF_TEXT_ID)}
            if not settings:
                firsts = {int(test[i][0][0]) for i in range(len(test))}
                out["test messages"] = len(test)
                out["distinct first tokens of the test messages"] = len(firsts)
        train_all, val_df, test_df = unbalanced_splits(self.profile("A04"))
        train_df = train_all.iloc[:TRAIN_LIMIT]
        out["A04 split (train used / all, validation, test)"] = [len(train_df), len(train_all), len(val_df), len(test_df)]
        out["A04 spam share of train_df"] = share(int(train_df["Label"].sum()), len(train_df))
        out["A04 always 'not spam' on test"] = share(int((test_df["Label"] == 0).sum()), len(test_df))
        out["A02 decay_shrink (lr 5e-5): wd 0.1 x 250, wd 10 x 250, wd 0.1 x 650"] = [
            round((1 - 5e-5 * wd) ** steps, 5) for wd, steps in ((0.1, 250), (10.0, 250), (0.1, 650))]
        return out

    def a05(self) -> dict[str, Any]:
        import pandas as pd

        from gptlib.assignments.a05 import support_table
        from gptlib.assignments.runner import collect_predictions

        source = Path(__file__).resolve().parents[2] / "notebooks" / "assignments" / "data" / "support_messages.csv"
        frame = support_table(str(source), "message", "category") if source.is_file() else pd.DataFrame()
        run = self.run("a05", "A05", csv=frame)
        preds, labels = collect_predictions(run.loaders[2], run.model)
        table = [[0] * len(run.class_names) for _ in run.class_names]
        for y, p in zip(labels, preds):
            table[y][p] += 1
        return {**_run_numbers(run), "classes": run.class_names, "test confusion (rows true)": table}

    def a01_63(self) -> dict[str, Any]:
        from gptlib.assignments.runner import collect_predictions

        run = self.run("6.3", "A01", token="first")
        preds, _ = collect_predictions(run.loaders[2], run.model, token="first")
        return {**_run_numbers(run), "distinct answers on test": len(set(preds))}

    def a01_baseline(self) -> dict[str, Any]:
        return _run_numbers(self.run("baseline", "A01"))

    def a01_no_norm(self) -> dict[str, Any]:
        def freeze_final_norm(model):
            for p in model.final_norm.parameters():
                p.requires_grad = False
            return model

        from gptlib.assignments.runner import run_experiment

        run = run_experiment(self.profile("A01"), adjust=freeze_final_norm, quiet=True, progress=False)
        return _run_numbers(run)

    def a03_last_real(self) -> dict[str, Any]:
        return _run_numbers(self.run("last_real", "A03", token="last_real"))

    def a03_batch(self) -> dict[str, Any]:
        run = self.run("batch", "A03", token="last_real", padding="batch")
        out = _run_numbers(run)
        if "last_real" in self.cache:
            a = self.cache["last_real"]
            out["max loss difference to last_real"] = max(abs(a.loss[s] - run.loss[s]) for s in a.loss)
        return out

    def a02(self) -> dict[str, Any]:
        return self._a02(("book", "weight decay 10"))

    def a02_dropout(self) -> dict[str, Any]:
        return self._a02(("dropout 0.3",))

    def _a02(self, names: tuple[str, ...]) -> dict[str, Any]:
        from gptlib.assignments.a02 import SETTINGS, TRAIN_MESSAGES, _trainable_norm

        out: dict[str, Any] = {}
        for name in names:
            rate, decay = SETTINGS[name]
            run = self.run(f"a02 {name}", "A02", train_limit=TRAIN_MESSAGES, drop_rate=rate, weight_decay=decay)
            losses = run.val_losses
            best = run.config["eval_freq"] * min(range(len(losses)), key=losses.__getitem__)
            out[name] = {**_run_numbers(run),
                         "accuracy gap (points)": round(100 * (run.accuracy["train"] - run.accuracy["validation"]), 2),
                         "loss gap": round(run.loss["validation"] - run.loss["train"], 4),
                         "best step": best, "steps": run.examples_seen // run.config["batch_size"],
                         "weight norm": round(_trainable_norm(run.model), 3)}
        if "book" in out and "weight decay 10" in out:
            out["norm ratio wd 10 / book"] = round(out["weight decay 10"]["weight norm"] / out["book"]["weight norm"], 4)
        return out

    def a04(self) -> dict[str, Any]:
        from gptlib.assignments.a04 import MAX_LENGTH, TRAIN_LIMIT, unbalanced_splits
        from gptlib.assignments.runner import collect_predictions
        from gptlib.data import create_balanced_dataset

        train_all, val_df, test_df = unbalanced_splits(self.profile("A04"))
        out: dict[str, Any] = {}
        for name, train_df in (("trained unbalanced", train_all.iloc[:TRAIN_LIMIT]),
                               ("trained balanced", create_balanced_dataset(train_all))):
            run = self.run(name, "A04", train=train_df, validation=val_df, test=test_df, max_length=MAX_LENGTH)
            preds, labels = collect_predictions(run.loaders[2], run.model)
            tp = sum(p == 1 and y == 1 for p, y in zip(preds, labels))
            pp, ap = sum(p == 1 for p in preds), sum(y == 1 for y in labels)
            prec, rec = (tp / pp if pp else 0.0), (tp / ap if ap else 0.0)
            out[name] = {"training messages": len(train_df),
                         "test accuracy": share(sum(p == y for p, y in zip(preds, labels)), len(labels)),
                         "precision": share(tp, pp) if pp else "nothing predicted spam",
                         "recall": share(tp, ap), "f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0,
                         "run seconds": round(run.seconds, 1)}
        return out

    def a01_head(self) -> dict[str, Any]:
        return _run_numbers(self.run("head", "A01", trainable="head"))

    def a01_61(self) -> dict[str, Any]:
        from gptlib.model import get_config

        context = get_config(self.profile("A01").model_size)["context_length"]
        small = self.run("baseline 200", "A01", train_limit=EXERCISE_61_MESSAGES)
        run = self.run("6.1", "A01", max_length=context, train_limit=EXERCISE_61_MESSAGES)
        return {"6.1 (200 messages, 1,024 tokens)": _run_numbers(run), "baseline on 200 messages": _run_numbers(small)}

    def a01_62(self) -> dict[str, Any]:
        return _run_numbers(self.run("6.2", "A01", trainable="all"))


ITEMS = ("data", "a05", "a01_63", "a01_baseline", "a01_no_norm", "a03_last_real", "a03_batch", "a02", "a04",
         "a01_head", "a02_dropout", "a01_61", "a01_62")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptlib.assignments.expected", description=__doc__.split("\n")[0])
    parser.add_argument("profile", choices=("smoke", "offline", "book"))
    parser.add_argument("items", nargs="*", help=f"which items (default all, in this order): {', '.join(ITEMS)}")
    parser.add_argument("--out", help="append each item's JSON line to this file")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.items) - set(ITEMS))
    if unknown:
        parser.error(f"unknown item(s) {unknown}; use {ITEMS}")
    measure = Measure(args.profile)
    for item in args.items or ITEMS:
        start = time.perf_counter()
        method: Callable[[], dict[str, Any]] = getattr(measure, item)
        line = json.dumps({"profile": args.profile, "item": item, **method(),
                           "seconds": round(time.perf_counter() - start, 1)})
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
