"""Command line: ``python -m gptlib finetune | experiments | classify | download | cache | assignments``.

Errors a student can fix (no network, a bad setting, a missing file) are printed as one
clear message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import signal
import sys
from collections.abc import Sequence

from gptlib import __version__
from gptlib.assignments.cli import add_assignments_parser, assignments_command
from gptlib.settings import PRESETS, FinetuneConfig, SettingError, parse_setting, setting_fields
from gptlib.study.commands import add_experiments_parser, experiments_command
from gptlib.tokenizer import END_OF_TEXT_ID


def add_setting_flags(p: argparse.ArgumentParser, base: str | None = None,
                      shown: dict[str, str] | None = None) -> None:
    """One ``--flag`` per FinetuneConfig setting, from its metadata. A flag not given leaves no
    attribute, so only the flags given override the settings a run starts from; ``base`` names
    those in the help ("the experiment's"; None: the book's defaults); ``shown``: the default
    the help names, by setting, where it is not that."""
    for f in setting_fields():
        meta = f.metadata
        choices = meta["choices"] if f.name != "model_size" else None
        default = base or (f"{f.default!r}" if f.default is not None else "none")
        default = (shown or {}).get(f.name, default)
        extra = f"; also {', '.join(repr(c) for c in meta['choices'][1:])}" if f.name == "model_size" else ""
        flags = [f"--{f.name.replace('_', '-')}"] + (["--model"] if f.name == "model_size" else [])
        p.add_argument(*flags, dest=f.name,
                       default=argparse.SUPPRESS, metavar=_metavar(meta, choices),
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
    given = {f.name: getattr(args, f.name) for f in setting_fields() if hasattr(args, f.name)}
    preset = given.get("speed") if given.get("speed") in PRESETS else "book"
    taken = {k: v for k, v in PRESETS[preset].items() if k not in given}
    if preset != "book" and taken:
        print(f"--speed {preset} takes the {preset} preset: "
              + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in taken.items() if k != "speed")
              + " (give any of them to choose otherwise).")
    _run(FinetuneConfig.preset(preset, **given), args.seeds, progress=not args.no_progress)
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

def _cache(args: argparse.Namespace) -> int:
    from gptlib.speed.store import default_store
    from gptlib.support.files import cache_dir

    if args.action == "warm":
        return _cache_warm(args)
    store = default_store()
    if args.action == "clear":
        removed = store.clear()
        print(f"removed {removed} activation set(s) from {store.root}")
        return 0
    home = cache_dir()
    print(f"gptlib cache: {home}")
    for name in ("data", "weights", "bases"):  # bases: base weights mapped by every kernel (speed.mapped)
        folder = home / name
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        print(f"  {name}: {len(files)} file(s), {sum(p.stat().st_size for p in files) / 2**20:,.1f} MiB")
    entries = store.disk_entries()
    print(f"  activations: {len(entries)} set(s), {store.disk_bytes() / 2**20:,.1f} MiB of "
          f"{store.max_disk_bytes / 2**20:,.0f} MiB (GPTLIB_STORE_DISK_MB) in {store.root}")
    for path in reversed(entries):  # most recently used first
        print(f"    {path.name}  {path.stat().st_size / 2**20:,.1f} MiB")
    if store.shared is not None:
        shared = sorted(store.shared.rglob("*.pt")) if store.shared.is_dir() else []
        print(f"  shared store (read-only, GPTLIB_SHARED_STORE): {store.shared}: "
              + (f"{len(shared)} file(s), {sum(p.stat().st_size for p in shared) / 2**20:,.1f} MiB"
                 if store.shared.is_dir() else "not a folder here"))
    return 0


def _cache_warm(args: argparse.Namespace) -> int:
    """The teacher's warm-up: a run's frozen activations computed once into ``--into``, which
    students' kernels then read with GPTLIB_SHARED_STORE (never writing it)."""
    from pathlib import Path

    from gptlib.finetune import run_finetune
    from gptlib.train import StopTraining

    if not args.into:
        raise ValueError("cache warm needs --into FOLDER: the shared store students will read.")
    into = Path(args.into).expanduser().resolve()
    os.environ["GPTLIB_STORE_DIR"] = str(into)  # this process's own store is the class's shared one
    os.environ["GPTLIB_BASES_DIR"] = str(into / "bases")  # and the base weights, mapped by every kernel
    os.environ.pop("GPTLIB_SHARED_STORE", None)
    given = {f.name: getattr(args, f.name) for f in setting_fields() if hasattr(args, f.name)}
    given = {"speed": "exact", **given, "output": str(into / ".warm-run"), "figures": None}
    cfg = FinetuneConfig.preset("fast", **given) if given["speed"] == "fast" else FinetuneConfig(**given)

    def stop_at_first_step(event) -> None:
        raise StopTraining  # the activations are in the store before the first step

    run_finetune(cfg, callback=stop_at_first_step, progress=False, verbose=False, save=False)
    entries = sorted(into.rglob("*.pt"))
    print(f"warmed {into}: {len(entries)} set(s), {sum(p.stat().st_size for p in entries) / 2**20:,.1f} MiB "
          f"(speed {cfg.speed}, {cfg.model_size}, {cfg.weights} weights). Students' kernels read it with "
          f"GPTLIB_SHARED_STORE={into}; make it readable, not writable, for them.")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from gptlib.classifier import load_classifier
    from gptlib.support.device import get_device
    from gptlib.tokenizer import get_tokenizer
    from gptlib.train import predict_proba

    device = get_device(args.device)
    model, meta = load_classifier(args.checkpoint, device)
    names = meta.get("class_names") or [str(i) for i in range(model.out_head.out_features)]
    tokenizer = get_tokenizer()  # GPT-2's, unless the run used an open model's own
    if meta.get("tokenizer", "gpt2") != "gpt2":
        from gptlib.models import load_hf_tokenizer

        tokenizer = load_hf_tokenizer(meta["tokenizer"], progress=False)
    for text in args.text:
        probs = predict_proba(text, model, tokenizer, device, max_length=meta.get("max_length"),
                              pad_token_id=meta.get("pad_token_id", END_OF_TEXT_ID), token=meta.get("token", "last"))
        best = max(range(len(probs)), key=probs.__getitem__)
        detail = ", ".join(f"{n} {p:.3f}" for n, p in zip(names, probs))
        print(f"{names[best]}\t({detail})\t{text}")
    return 0


def _download(args: argparse.Namespace) -> int:
    """Fetch ahead of time what a run needs. The SMS data ships with gptlib, so ``download data``
    needs no network unless a URL is given; ``download all`` goes on to the weights whatever
    the data step met, and says at the end what could not be fetched."""
    from gptlib.data import DataError
    from gptlib.support.download import DownloadError

    failed = []
    if args.what in ("data", "all"):
        from gptlib.finetune import resolve_data_file

        url = args.data_url or os.environ.get("GPTLIB_DATA_URL")
        try:
            print(resolve_data_file(None, url=url, timeout=args.timeout, shipped=not url))
        except (DownloadError, DataError) as err:
            if args.what == "data":
                raise
            print(f"data: {_one_line(err)}", file=sys.stderr)
            failed.append("the data")
    if args.what in ("weights", "all"):
        from gptlib.models import is_open_model
        from gptlib.models.hf_tokenizer import load_hf_tokenizer
        from gptlib.models.hf_weights import fetch_model, model_dir
        from gptlib.weights import download_pretrained

        for name in args.model_size:
            try:
                if is_open_model(name):  # Qwen3, Llama: config, weights and tokenizer files
                    fetch_model(name, timeout=args.timeout)  # the files only: nothing is loaded
                    load_hf_tokenizer(name, timeout=args.timeout)
                    print(model_dir(name))
                    continue
                print(download_pretrained(name, timeout=args.timeout))
            except DownloadError as err:
                if args.what == "weights" and len(args.model_size) == 1:
                    raise
                print(f"{name}: {_one_line(err)}", file=sys.stderr)
                failed.append(name)
    if failed:
        print(f"error: could not fetch {', '.join(failed)} (see above); the rest is in place.", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gptlib", description="gptlib: chapter 6 of 'Build a Large Language Model (From "
        "Scratch)' on the command line: fine-tune GPT-2 as an SMS spam classifier, run the book's experiments, "
        "classify messages, fetch files ahead of time, and build or grade the assignments.")
    parser.add_argument("--version", action="version", version=f"gptlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_finetune(sub)
    add_experiments_parser(sub, add_setting_flags, _add_seeds_and_progress)
    c = sub.add_parser("classify", help="classify messages with a saved classifier")
    c.add_argument("checkpoint", help="classifier.pth written by `finetune`")
    c.add_argument("text", nargs="+", help="one or more messages")
    c.add_argument("--device", default="auto")
    dl = sub.add_parser("download", help="fetch the weights (and, from a URL, the data) ahead of time, e.g. "
                                         "before class; the SMS data ships with gptlib")
    dl.add_argument("what", choices=["data", "weights", "all"], nargs="?", default="all")
    dl.add_argument("--model-size", "--model", nargs="+", default=["gpt2-small (124M)"],
                    help="weight presets to fetch: GPT-2's, or qwen3-0.6b / llama3.2-1b (their tokenizer too)")
    dl.add_argument("--data-url", default=None, metavar="URL",
                    help="download the SMS zip from here, e.g. a mirror (default: GPTLIB_DATA_URL, else the book's)")
    dl.add_argument("--timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                    help="seconds each download waits for the server (default: GPTLIB_DOWNLOAD_TIMEOUT, else 60)")
    cache = sub.add_parser("cache", help="what gptlib keeps on disk (data, weights, frozen activations)")
    cache.add_argument("action", choices=["info", "clear", "warm"],
                       help="info: sizes and folders; clear: remove the stored frozen activations; warm: "
                            "compute a run's frozen activations once into --into (a class's shared store)")
    cache.add_argument("--into", metavar="FOLDER", help="warm: the shared store to fill (students: GPTLIB_SHARED_STORE)")
    add_setting_flags(cache)
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
    if not found:
        return text
    name = min(found)[1]
    return f"--{name.replace('_', '-')}: {text.removeprefix(f'{name}: ')}"


def _one_line(message: object) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"finetune": _finetune, "classify": _classify, "download": _download,
                "assignments": assignments_command, "cache": _cache,
                "experiments": lambda args: experiments_command(args, _run)}
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
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while this ends changes nothing
        print("interrupted; nothing half-written was kept (a run's previous files are as they were).",
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
