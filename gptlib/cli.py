"""Command line: ``python -m gptlib finetune | classify | download | cache | assignments``.

Errors a student can fix (no network, a bad setting, a missing file) are printed as one
clear message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from gptlib.settings import FinetuneConfig, parse_setting, setting_fields


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune GPT-2 as an SMS spam classifier (the book's chapter 6)",
                       description="Run the whole chapter: data, pretrained weights, head, training, "
                                   "final accuracies, plots, metrics.json and a checkpoint. Defaults are the book's.")
    for f in setting_fields():  # one flag per FinetuneConfig setting, from its metadata
        meta = f.metadata
        choices = meta["choices"] if f.name != "model_size" else None
        shown = f"{f.default!r}" if f.default is not None else "none"
        extra = f"; also {', '.join(repr(c) for c in meta['choices'][1:])}" if f.name == "model_size" else ""
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=f.default, metavar=_metavar(meta, choices),
                       type=functools.partial(_parse, f.name),
                       help=f"{meta['help']} (default {shown}{extra})"
                            + (f"; one of {', '.join(map(str, choices))}" if choices else ""))
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run N times, with seeds SEED, SEED+1, ... (files in OUTPUT/seed-S), and print the "
                        "test accuracy's mean, spread and 95%% interval (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _metavar(meta: dict, choices: tuple | None) -> str:
    if choices:
        return "|".join(map(str, choices))
    return {"int": "N", "int?": "N", "float": "X", "trainable": "WHAT"}.get(meta["parse"], "TEXT")


def _parse(name: str, text: str):
    try:
        return parse_setting(name, text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _finetune(args: argparse.Namespace) -> int:
    from gptlib.finetune import run_finetune

    values = {f.name: getattr(args, f.name) for f in setting_fields()}
    cfg = FinetuneConfig.from_dict(values)
    if args.seeds == 1:
        run_finetune(cfg, progress=not args.no_progress)
        return 0
    from gptlib.finetune import run_finetune_seeds

    results, s = run_finetune_seeds(cfg, args.seeds, progress=not args.no_progress)
    tests = ", ".join(f"{100 * r.test_accuracy:.2f}%" for r in results)
    print(f"test accuracy over {s['seeds']} seeds ({tests}): mean {100 * s['mean']:.2f}%, spread "
          f"{100 * s['std']:.2f} points, 95% interval {100 * s['low']:.2f}-{100 * s['high']:.2f}% "
          f"({s['n']} test messages and the seeds' spread; see gptlib.noise)")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from gptlib.files import cache_dir
    from gptlib.store import default_store

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
    from gptlib.device import get_device
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
        from gptlib.data import download_and_unzip_spam_data

        print(download_and_unzip_spam_data())
    if args.what in ("weights", "all"):
        from gptlib.weights import download_pretrained

        for name in args.model_size:
            print(download_pretrained(name))
    return 0


def _assignments(args: argparse.Namespace) -> int:
    from gptlib.assignments import build_student_versions

    for path in build_student_versions(args.source, args.outdir):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gptlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_finetune(sub)
    c = sub.add_parser("classify", help="classify messages with a saved classifier")
    c.add_argument("checkpoint", help="classifier.pth written by `finetune`")
    c.add_argument("text", nargs="+", help="one or more messages")
    c.add_argument("--device", default="auto")
    dl = sub.add_parser("download", help="fetch the data and/or weights ahead of time (e.g. before class)")
    dl.add_argument("what", choices=["data", "weights", "all"], nargs="?", default="all")
    dl.add_argument("--model-size", nargs="+", default=["gpt2-small (124M)"], help="weight presets to fetch")
    cache = sub.add_parser("cache", help="what gptlib keeps on disk (data, weights, frozen activations)")
    cache.add_argument("action", choices=["info", "clear"],
                       help="info: sizes and folders; clear: remove the stored frozen activations")
    asg = sub.add_parser("assignments", help="classroom assignments: build the student versions")
    asg_sub = asg.add_subparsers(dest="action", required=True)
    b = asg_sub.add_parser("build", help="write the assignment notebooks without their solutions to OUTDIR")
    b.add_argument("outdir", help="folder for the student notebooks (and the data files they read)")
    b.add_argument("--source", default=None,
                   help="folder of the solution notebooks (default: the checkout's notebooks/assignments)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"finetune": _finetune, "classify": _classify, "download": _download,
                "assignments": _assignments, "cache": _cache}
    from gptlib.data import DataError
    from gptlib.download import DownloadError
    from gptlib.weights import WeightLoadError

    try:
        return handlers[args.command](args)
    except (DownloadError, DataError, WeightLoadError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder that cannot be read or written (cache, output)
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; files already written are complete, nothing half-written was kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
