"""Command line: ``python -m gptlib finetune | classify | download | assignments``.

Errors a student can fix (no network, a bad setting, a missing file) are printed as one
clear message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gptlib.finetune import FinetuneConfig


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    d = FinetuneConfig()
    p = sub.add_parser("finetune", help="fine-tune GPT-2 as an SMS spam classifier (the book's chapter 6)",
                       description="Run the whole chapter: data, pretrained weights, head, training, "
                                   "final accuracies, plots, metrics.json and a checkpoint. Defaults are the book's.")
    p.add_argument("--model-size", default=d.model_size, help=f"model preset (default {d.model_size!r}; "
                   "also 'gpt2-medium (355M)', 'gpt2-large (774M)', 'gpt2-xl (1558M)', 'gpt2-tiny (test)')")
    p.add_argument("--weights", choices=["pretrained", "random"], default=d.weights)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--drop-rate", type=float, default=d.drop_rate)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--trainable", default=d.trainable,
                   help="head | last_block (book) | last_N_blocks | all (default %(default)s)")
    p.add_argument("--token", choices=["last", "first", "last_real", "mean"], default=d.token,
                   help="which position's logits are read (default %(default)s)")
    p.add_argument("--padding", choices=["max_length", "batch"], default=d.padding,
                   help="pad to the longest training message (book) or per batch")
    p.add_argument("--max-length", type=int, default=None,
                   help="pad/truncate to this many tokens (default: longest training message; 1024 = exercise 6.1)")
    p.add_argument("--data", default=None, help="local SMSSpamCollection file, zip or folder (else download; "
                   "GPTLIB_DATA_DIR works too)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda | mps (default %(default)s)")
    p.add_argument("--output", default=d.output, help="folder for metrics.json and classifier.pth")
    p.add_argument("--figures", default=d.figures, help="folder for the loss/accuracy plots")
    p.add_argument("--eval-freq", type=int, default=d.eval_freq)
    p.add_argument("--eval-iter", type=int, default=d.eval_iter)
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training messages")
    p.add_argument("--speed", choices=["book", "exact", "fast"], default=d.speed,
                   help="book: the book's plain computation; exact (default): the same results, faster, "
                        "by reusing frozen activations; fast: last real token, per-batch padding, "
                        "length grouping where padding costs work (and bf16 where fast)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _finetune(args: argparse.Namespace) -> int:
    from gptlib.finetune import run_finetune

    values = {k: v for k, v in vars(args).items() if k not in ("command", "no_progress", "func")}
    trainable = values["trainable"]
    values["trainable"] = int(trainable) if str(trainable).isdigit() else trainable
    run_finetune(FinetuneConfig.from_dict(values), progress=not args.no_progress)
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
                "assignments": _assignments}
    from gptlib.data import DataError
    from gptlib.download import DownloadError
    from gptlib.weights import WeightLoadError

    try:
        return handlers[args.command](args)
    except (DownloadError, DataError, WeightLoadError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; files already written are complete, nothing half-written was kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
