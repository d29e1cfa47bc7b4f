"""``python -m gptlib experiments``: the book's experiments from the command line: list them,
run one with its settings (finetune flags override), and set your runs beside the book's
numbers with a within-noise verdict, only where the run is the same experiment."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from gptlib.settings import setting_fields
from gptlib.study.experiments import (
    SPLIT_NOTE,
    compare,
    experiment,
    experiments,
    format_value,
    read_runs,
    settings_flags,
)

RUNS_DIR = "runs/experiments"


def add_experiments_parser(sub: argparse._SubParsersAction, add_setting_flags: Callable[..., None],
                           add_seeds_and_progress: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``experiments`` command and its actions; the setting flags and the seeds/progress
    flags are the finetune command's own (handed in by :mod:`gptlib.cli`)."""
    e = sub.add_parser("experiments", help="the book's experiments (chapter, exercises, bonus table, appendix "
                                           "E): list them, run one, compare your runs with the book",
                       description="Every experiment of the book's chapter 6 with the settings that repeat it.")
    e_sub = e.add_subparsers(dest="action", required=True)
    e_sub.add_parser("list", help="every experiment: key, source, the book's numbers, its finetune flags")
    r = e_sub.add_parser("run", help="run one experiment (any finetune flag given overrides its settings)",
                         description="Run one of the book's experiments with its settings; finetune flags "
                                     f"override them (e.g. --epochs 1). Files go to {RUNS_DIR}/KEY unless "
                                     "--output says otherwise; plots only with --figures DIR.")
    r.add_argument("key", metavar="KEY", help="the experiment's key (see `experiments list`)")
    add_setting_flags(r, base="the experiment's", shown={"output": f"{RUNS_DIR}/KEY", "figures": "none"})
    add_seeds_and_progress(r)
    t = e_sub.add_parser("table", help="the book's numbers beside your runs, with a within-noise verdict")
    t.add_argument("--runs", default=RUNS_DIR, metavar="DIR",
                   help=f"folder with one subfolder per experiment key (default {RUNS_DIR})")


def _pct(value: float | None) -> str:
    return f"{'-':>6}" if value is None else f"{100 * value:6.2f}"


def _pts(value: float | None) -> str:
    return f"{'-':>6}" if value is None else f"{value:+6.2f}"


def _book_line(exp) -> str:
    book = exp.book()
    when = ""
    if exp.minutes is not None:
        when = f"  ({exp.minutes:g} min" + (f" on {exp.hardware}" if exp.hardware else "") + ")"
    return f"train {_pct(book['train'])}  val {_pct(book['val'])}  test {_pct(book['test'])}{when}"


def _experiments_list(_args: argparse.Namespace) -> int:

    print("The book's chapter 6 experiments (accuracies in percent). Copy the flags into "
          "`python -m gptlib finetune`, or run one with `python -m gptlib experiments run KEY`.\n")
    defaults = "(none: the defaults are the book's)"
    for exp in experiments():
        mark = " *" if exp.other_split else ""
        print(f"{exp.key + mark:<18} {exp.label:<13} {exp.description}")
        print(f"{'':<18} book:  {_book_line(exp)}")
        print(f"{'':<18} flags: {exp.flags() or defaults}")
        extra = [exp.note] if exp.note else []
        if exp.same_as:
            extra.append(f"the same run as bonus row '{exp.same_as}'; the book gives only its test accuracy")
        for line in extra:
            print(f"{'':<18} note:  {line}")
    print(f"\n* {SPLIT_NOTE}.")
    return 0


def _experiments_run(args: argparse.Namespace, run: Callable[..., list]) -> int:

    exp = experiment(args.key)
    overrides = {f.name: getattr(args, f.name) for f in setting_fields() if hasattr(args, f.name)}
    changed = {k: v for k, v in overrides.items() if k not in exp.settings or exp.settings[k] != v}
    overrides.setdefault("output", str(Path(RUNS_DIR) / exp.key))
    overrides.setdefault("figures", None)
    cfg = exp.config(**overrides)
    cfg.check()
    print(f"Experiment {exp.key} ({exp.label}): {exp.description}\n"
          f"  the book: {_book_line(exp).strip()}\n  settings: {exp.flags() or '(the defaults)'}")
    if changed:
        print(f"  your changes: {settings_flags(changed)}")
    results = run(cfg, args.seeds, progress=not args.no_progress)
    runs = [{"train": r.train_accuracy, "val": r.val_accuracy, "test": r.test_accuracy,
             "n": int(r.test_metrics.get("n") or 1), "config": r.config} for r in results]
    print(f"Against the book: {_verdict(compare(exp, runs))}")
    return 0


def _verdict(cmp: dict) -> str:
    if cmp["unlike"]:
        return (f"not compared: your run changes {', '.join(cmp['unlike'])}, so it is another experiment "
                "than the book's row (only speed, seed and evaluation settings keep it the same)")
    if cmp["within_noise"] is None:
        return "the book gives no test accuracy to compare with"
    spread = f", seeds' spread {100 * cmp['spread']:.2f}" if cmp["seeds"] > 1 else ""
    word = "within noise" if cmp["within_noise"] else "MORE than noise"
    return (f"test {cmp['diff']['test']:+.2f} points, {word} (95% band +-{cmp['band']:.2f} points: "
            f"{cmp['n']} test messages here, the book's 300{spread})")


def _experiments_table(args: argparse.Namespace) -> int:

    root = Path(args.runs)
    known = {exp.key for exp in experiments()}
    problems = [f"{p}: no experiment '{p.name}' in the book's list; ignored."
                for p in sorted(root.iterdir() if root.is_dir() else []) if p.is_dir() and p.name not in known]
    print(f"The book's accuracies beside yours (percent; diff = yours - the book's, in points), runs from {root}.")
    print(f"{'':<18} {'the book':^20}   {'yours':^20}   {'diff (points)':^20}")
    print(f"{'key':<18} {'train':>6} {'val':>6} {'test':>6} | {'train':>6} {'val':>6} {'test':>6} | "
          f"{'train':>6} {'val':>6} {'test':>6} | seeds  test within noise?")
    n_run = 0
    for exp in experiments():
        book = exp.book()
        left = f"{exp.key + (' *' if exp.other_split else ''):<18} {_pct(book['train'])} {_pct(book['val'])} " \
               f"{_pct(book['test'])} |"
        runs, bad = read_runs(root / exp.key)
        problems += bad
        if not runs:
            print(f"{left} not run")
            continue
        n_run += 1
        cmp = compare(exp, runs)
        ours, diff = cmp["ours"], cmp["diff"]
        noise = "not compared (other settings)" if cmp["unlike"] else "-" if cmp["within_noise"] is None else \
            f"{'yes' if cmp['within_noise'] else 'NO'} (+-{cmp['band']:.2f}" + \
            (f", spread {100 * cmp['spread']:.2f})" if cmp["seeds"] > 1 else ")")
        print(f"{left} {_pct(ours['train'])} {_pct(ours['val'])} {_pct(ours['test'])} | {_pts(diff['train'])} "
              f"{_pts(diff['val'])} {_pts(diff['test'])} | {cmp['seeds']:>5}  {noise}")
        if cmp["changed"]:
            print(f"{'':<18} note: ran with {', '.join(f'{k}={format_value(v)}' for k, v in cmp['changed'].items())}"
                  " (not the experiment's settings)")
    print(f"\n* {SPLIT_NOTE}.\nWithin noise: the test difference lies inside the 95% band of both test "
          "samples (binomial) and the seeds' spread (see gptlib.support.noise.compare_with_book).")
    if not n_run:
        print(f"No runs in {root} yet: run one with `python -m gptlib experiments run KEY`.")
    for line in problems:
        print(f"note: {line}")
    return 0


def experiments_command(args: argparse.Namespace, run: Callable[..., list]) -> int:
    """``python -m gptlib experiments list | run KEY | table``; ``run`` runs a FinetuneConfig
    (with ``seeds`` and ``progress``) and returns its results, as ``finetune`` does."""
    if args.action == "run":
        return _experiments_run(args, run)
    return {"list": _experiments_list, "table": _experiments_table}[args.action](args)
