"""Command line: ``python -m gptlib finetune | experiments | classify | download | cache | assignments``.

Errors a student can fix (no network, a bad setting, a missing file) are printed as one
clear message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Sequence

from gptlib.assignments.cli import add_assignments_parser, assignments_command
from gptlib.settings import FinetuneConfig, SettingError, parse_setting, setting_fields


def add_setting_flags(p: argparse.ArgumentParser, suppress: bool = False,
                      shown: dict[str, str] | None = None) -> None:
    """One ``--flag`` per FinetuneConfig setting, from its metadata. ``suppress=True``: a flag
    not given leaves no attribute (so only the flags given override, e.g. an experiment's);
    ``shown``: the default the help names, by setting, where it is not the field's."""
    for f in setting_fields():
        meta = f.metadata
        choices = meta["choices"] if f.name != "model_size" else None
        default = "the experiment's" if suppress else (f"{f.default!r}" if f.default is not None else "none")
        default = (shown or {}).get(f.name, default)
        extra = f"; also {', '.join(repr(c) for c in meta['choices'][1:])}" if f.name == "model_size" else ""
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name,
                       default=argparse.SUPPRESS if suppress else f.default, metavar=_metavar(meta, choices),
                       type=functools.partial(_parse, f.name),
                       help=f"{meta['help']} (default {default}{extra})"
                            + (f"; one of {', '.join(map(str, choices))}" if choices else ""))


def _add_seeds_and_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run N times, with seeds SEED, SEED+1, ... (files in OUTPUT/seed-S), and print the "
                        "test accuracy's mean, spread and 95%% interval (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune GPT-2 as an SMS spam classifier (the book's chapter 6)",
                       description="Run the whole chapter: data, pretrained weights, head, training, "
                                   "final accuracies, plots, metrics.json and a checkpoint. Defaults are the book's.")
    add_setting_flags(p)
    _add_seeds_and_progress(p)


def _metavar(meta: dict, choices: tuple | None) -> str:
    if choices:
        return "|".join(map(str, choices))
    return {"int": "N", "int?": "N", "float": "X", "trainable": "WHAT", "bool": "true|false"}.get(
        meta["parse"], "TEXT")


def _parse(name: str, text: str):
    try:
        return parse_setting(name, text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _finetune(args: argparse.Namespace) -> int:
    values = {f.name: getattr(args, f.name) for f in setting_fields()}
    _run(FinetuneConfig.from_dict(values), args.seeds, progress=not args.no_progress)
    return 0


def _run(cfg: FinetuneConfig, seeds: int, progress: bool) -> list:
    """One run, or ``seeds`` runs with a summary line; the FinetuneResults."""
    from gptlib.finetune import run_finetune, run_finetune_seeds

    if seeds == 1:
        return [run_finetune(cfg, progress=progress)]
    results, s = run_finetune_seeds(cfg, seeds, progress=progress)
    tests = ", ".join(f"{100 * r.test_accuracy:.2f}%" for r in results)
    print(f"test accuracy over {s['seeds']} seeds ({tests}): mean {100 * s['mean']:.2f}%, spread "
          f"{100 * s['std']:.2f} points, 95% interval {100 * s['low']:.2f}-{100 * s['high']:.2f}% "
          f"({s['n']} test messages and the seeds' spread; see gptlib.support.noise)")
    return results


# ------------------------------------------------------------------ the book's experiments

RUNS_DIR = "runs/experiments"


def _add_experiments(sub: argparse._SubParsersAction) -> None:
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
    add_setting_flags(r, suppress=True, shown={"output": f"{RUNS_DIR}/KEY", "figures": "none"})
    _add_seeds_and_progress(r)
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
    from gptlib.study.experiments import SPLIT_NOTE, experiments

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


def _experiments_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gptlib.study.experiments import compare, experiment, settings_flags

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
    results = _run(cfg, args.seeds, progress=not args.no_progress)
    runs = [{"train": r.train_accuracy, "val": r.val_accuracy, "test": r.test_accuracy,
             "n": int(r.test_metrics.get("n") or 1), "config": r.config} for r in results]
    print(f"Against the book: {_verdict(compare(exp, runs))}")
    return 0


def _verdict(cmp: dict) -> str:
    if cmp["within_noise"] is None:
        return "the book gives no test accuracy to compare with"
    spread = f", seeds' spread {100 * cmp['spread']:.2f}" if cmp["seeds"] > 1 else ""
    word = "within noise" if cmp["within_noise"] else "MORE than noise"
    return (f"test {cmp['diff']['test']:+.2f} points, {word} (95% band +-{cmp['band']:.2f} points: "
            f"{cmp['n']} test messages here, the book's 300{spread})")


def _experiments_table(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gptlib.study.experiments import SPLIT_NOTE, compare, experiments, format_value, read_runs

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
        noise = "-" if cmp["within_noise"] is None else \
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


def _experiments(args: argparse.Namespace) -> int:
    return {"list": _experiments_list, "run": _experiments_run, "table": _experiments_table}[args.action](args)


def _cache(args: argparse.Namespace) -> int:
    from gptlib.speed.store import default_store
    from gptlib.support.files import cache_dir

    store = default_store()
    if args.action == "clear":
        removed = store.clear()
        print(f"removed {removed} activation set(s) from {store.root}")
        return 0
    home = cache_dir()
    print(f"gptlib cache: {home}")
    for name in ("data", "weights"):
        folder = home / name
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        print(f"  {name}: {len(files)} file(s), {sum(p.stat().st_size for p in files) / 2**20:,.1f} MiB")
    entries = store.disk_entries()
    print(f"  activations: {len(entries)} set(s), {store.disk_bytes() / 2**20:,.1f} MiB of "
          f"{store.max_disk_bytes / 2**20:,.0f} MiB (GPTLIB_STORE_DISK_MB) in {store.root}")
    for path in reversed(entries):  # most recently used first
        print(f"    {path.name}  {path.stat().st_size / 2**20:,.1f} MiB")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from gptlib.classifier import load_classifier
    from gptlib.support.device import get_device
    from gptlib.tokenizer import get_tokenizer
    from gptlib.train import predict_proba

    device = get_device(args.device)
    model, meta = load_classifier(args.checkpoint, device)
    names = meta.get("class_names") or [str(i) for i in range(model.out_head.out_features)]
    for text in args.text:
        probs = predict_proba(text, model, get_tokenizer(), device, max_length=meta.get("max_length"),
                              pad_token_id=meta.get("pad_token_id", 50256), token=meta.get("token", "last"))
        best = max(range(len(probs)), key=probs.__getitem__)
        detail = ", ".join(f"{n} {p:.3f}" for n, p in zip(names, probs))
        print(f"{names[best]}\t({detail})\t{text}")
    return 0


def _download(args: argparse.Namespace) -> int:
    if args.what in ("data", "all"):
        from gptlib.finetune import resolve_data_file

        print(resolve_data_file(None, url=args.data_url, timeout=args.timeout, shipped=False))
    if args.what in ("weights", "all"):
        from gptlib.weights import download_pretrained

        for name in args.model_size:
            print(download_pretrained(name, timeout=args.timeout))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gptlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_finetune(sub)
    _add_experiments(sub)
    c = sub.add_parser("classify", help="classify messages with a saved classifier")
    c.add_argument("checkpoint", help="classifier.pth written by `finetune`")
    c.add_argument("text", nargs="+", help="one or more messages")
    c.add_argument("--device", default="auto")
    dl = sub.add_parser("download", help="fetch the data and/or weights ahead of time (e.g. before class)")
    dl.add_argument("what", choices=["data", "weights", "all"], nargs="?", default="all")
    dl.add_argument("--model-size", nargs="+", default=["gpt2-small (124M)"], help="weight presets to fetch")
    dl.add_argument("--data-url", default=None, metavar="URL",
                    help="download the SMS zip from here, e.g. a mirror (default: GPTLIB_DATA_URL, else the book's)")
    dl.add_argument("--timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                    help="seconds each download waits for the server (default: GPTLIB_DOWNLOAD_TIMEOUT, else 60)")
    cache = sub.add_parser("cache", help="what gptlib keeps on disk (data, weights, frozen activations)")
    cache.add_argument("action", choices=["info", "clear"],
                       help="info: sizes and folders; clear: remove the stored frozen activations")
    add_assignments_parser(sub)
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--timeout takes a number of seconds above 0; got {text!r}")
    return value


def _flagged(err: Exception) -> str:
    """A setting's error with its command-line flag in front: ``--train-limit: train_limit ...``."""
    text = _one_line(err)
    found = [(m.start(), f.name) for f in setting_fields() if (m := re.search(rf"\b{f.name}\b", text))]
    return f"--{min(found)[1].replace('_', '-')}: {text}" if found else text


def _one_line(message: object) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"finetune": _finetune, "classify": _classify, "download": _download,
                "assignments": assignments_command, "cache": _cache,
                "experiments": _experiments}
    from gptlib.data import DataError
    from gptlib.support.download import DownloadError
    from gptlib.weights import WeightLoadError

    try:
        return handlers[args.command](args)
    except SettingError as err:  # name the flag, as the user typed it
        print(f"error: {_flagged(err)}", file=sys.stderr)
        return 2
    except (DownloadError, DataError, WeightLoadError, FileNotFoundError, ValueError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder that cannot be read or written (cache, output)
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"error: {_one_line(err.strerror or err)}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the previous run's files are as they were, and nothing half-written was kept.",
              file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last resort: one line, never a traceback
        if os.environ.get("GPTLIB_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {_one_line(err)[:300]} (this is gptlib's fault, not "
              "yours: rerun with GPTLIB_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
