"""gptlib's LoRA against the book's appendix E code, side by side: seconds per training step.

Both sides start from the same numbers and see the same batches:

* **weights**: gpt2-small's shape with *random* weights (``torch.manual_seed(123)``; OpenAI's
  weights cannot be downloaded here), made once by gptlib's ``GPTModel`` and loaded into the
  book's ``llms_from_scratch.ch04.GPTModel``; the 768 -> 2 head added after
  ``torch.manual_seed(123)``, as in the chapter;
* **adapters**: rank 16, alpha 16 on every ``Linear``, head included, created after
  ``torch.manual_seed(321)`` on each side: the same ``A`` matrices (checked), ``B = 0``. The
  book's package (1.0.19) scales by alpha, so gptlib runs with ``scaling="alpha"`` too;
* **data**: the real SMS Spam Collection (``../shared/data/sms_spam_collection``), split the
  book's way by ``gptlib.data`` and padded to the longest training message (120 tokens); the
  first ``--steps`` training batches of 8, shuffled after ``torch.manual_seed(123)``;
* **training**: AdamW, lr 5e-5, weight decay 0.1 (appendix E as printed); each side with its
  own model class, loss function (``llms_from_scratch.ch06.calc_loss_batch`` /
  ``gptlib.train.calc_loss_batch``) and LoRA layers (``appendix_e.replace_linear_with_lora``
  / ``gptlib.lora.add_lora``).

The two sides' steps alternate (ours, book, book, ours, ...) so that whatever else the
machine does slows both alike; each repeat starts both from the initial adapters again. A
side's figure is the median over repeats of its mean seconds per step. A step of LoRA on
gpt2-small computes gradients back through all twelve blocks: several seconds on 2 CPU cores,
far more when other jobs share them, hence the few default steps and the time limit.

    python benchmarks/lora_speed.py                      # 6 steps, up to 3 repeats, at most ~9 minutes
    python benchmarks/lora_speed.py --steps 20 --repeats 5 --max-minutes 60   # on a quiet machine
    python benchmarks/lora_speed.py --save benchmarks/results/lora_speed.json

The last line reads ``ours is X.XXx the book's speed`` (above 1: gptlib is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "sms_spam_collection" / "SMSSpamCollection"
MODEL = "gpt2-small (124M)"


def first_batches(data_file: Path, steps: int, batch_size: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], int]:
    """The first ``steps`` training batches of the book's split (shuffled after seed 123) and
    the padded length."""
    from gptlib.data import create_data_loaders, prepare_spam_splits, spam_datasets
    from gptlib.tokenizer import get_tokenizer

    with tempfile.TemporaryDirectory(prefix="gptlib-lora-bench-") as tmp:
        train_csv, val_csv, test_csv = prepare_spam_splits(data_file, Path(tmp))
        train_ds, val_ds, test_ds = spam_datasets(train_csv, val_csv, test_csv, get_tokenizer())
    train_loader, _, _ = create_data_loaders(train_ds, val_ds, test_ds, batch_size=batch_size, seed=123)
    if steps > len(train_loader):
        raise SystemExit(f"--steps {steps} is more than the {len(train_loader)} training batches.")
    batches = []
    for x, y in train_loader:
        batches.append((x, y))
        if len(batches) == steps:
            break
    return batches, train_ds.max_length


def build_models(rank: int, alpha: float) -> tuple[nn.Module, nn.Module]:
    """(gptlib's LoRA classifier, the book's), on the same random gpt2-small weights, with the
    same initial adapters."""
    from llms_from_scratch import appendix_e, ch04

    from gptlib.classifier import add_classification_head
    from gptlib.lora import add_lora, lora_layers
    from gptlib.model import GPTModel, get_config

    cfg = get_config(MODEL)
    torch.manual_seed(123)
    plain = add_classification_head(GPTModel(cfg).eval(), trainable="head", seed=123, inplace=True)
    book = ch04.GPTModel({k: cfg[k] for k in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers",
                                              "drop_rate", "qkv_bias")})
    book.out_head = nn.Linear(cfg["emb_dim"], 2)
    book.load_state_dict(plain.state_dict())
    book.eval()
    for p in book.parameters():
        p.requires_grad = False
    torch.manual_seed(321)
    appendix_e.replace_linear_with_lora(book, rank=rank, alpha=alpha)
    torch.manual_seed(321)
    ours = add_lora(plain, rank=rank, alpha=alpha, scaling="alpha", inplace=True)
    book_a = [m.lora.A for m in book.modules() if isinstance(m, appendix_e.LinearWithLoRA)]
    our_a = [layer.lora.A for layer in lora_layers(ours).values()]
    if len(book_a) != len(our_a) or not all(torch.equal(a, b) for a, b in zip(book_a, our_a, strict=True)):
        raise SystemExit("The two sides' initial adapters differ; the comparison would not be fair.")
    return ours, book


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the parameters that train (the adapters)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def restore(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put the adapters back to ``state`` (the start of every repeat)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


class Side:
    """One implementation under test: its model, loss function, optimizer and measurements."""

    def __init__(self, name: str, model: nn.Module, loss_fn: Any, lr: float, weight_decay: float):
        self.name, self.model, self.loss_fn = name, model, loss_fn
        self.lr, self.weight_decay = lr, weight_decay
        self.start = trainable_state(model)
        self.n_trainable = sum(p.numel() for p in self.start.values())
        self.optimizer: torch.optim.Optimizer | None = None
        self.step_seconds: list[list[float]] = []  # per repeat, per step
        self.losses: list[list[float]] = []

    def reset(self) -> None:
        """Initial adapters and a fresh AdamW: every repeat trains the same steps from the start."""
        restore(self.model, self.start)
        self.model.train()
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                           lr=self.lr, weight_decay=self.weight_decay)
        self.step_seconds.append([])
        self.losses.append([])

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One timed training step: forward, loss, backward, optimizer step."""
        began = time.perf_counter()
        self.optimizer.zero_grad()
        loss = self.loss_fn(x, y, self.model, "cpu")
        loss.backward()
        self.optimizer.step()
        self.step_seconds[-1].append(time.perf_counter() - began)
        self.losses[-1].append(loss.item())

    def per_step(self) -> float:
        """Median over repeats of the mean seconds per step."""
        return statistics.median(statistics.fmean(r) for r in self.step_seconds)


def run(args: argparse.Namespace, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Side, Side]:
    """Build both sides, then train them step by step, alternating, for every repeat."""
    from llms_from_scratch import ch06

    from gptlib.train import calc_loss_batch

    began = time.perf_counter()
    ours_model, book_model = build_models(args.rank, args.alpha)
    print(f"models built in {time.perf_counter() - began:.1f} s (same weights, same initial adapters: checked)",
          flush=True)
    ours = Side("gptlib", ours_model, calc_loss_batch, args.lr, args.weight_decay)
    book = Side("book", book_model, ch06.calc_loss_batch, args.lr, args.weight_decay)
    if ours.n_trainable != book.n_trainable:
        raise SystemExit(f"trainable parameters differ: {ours.n_trainable:,} vs {book.n_trainable:,}")
    # one untimed step each first (memory allocation, thread pool), then restored in reset()
    for side in (ours, book):
        side.reset()
        side.step(*batches[0])
        side.step_seconds.clear()
        side.losses.clear()
    loop_began = time.perf_counter()
    for repeat in range(args.repeats):
        spent = time.perf_counter() - began
        per_repeat = (time.perf_counter() - loop_began) / repeat if repeat else 0.0
        if repeat and spent + per_repeat > 60 * args.max_minutes:
            print(f"  stopping after {repeat} repeat(s): another would pass --max-minutes {args.max_minutes:g}",
                  flush=True)
            break
        for side in (ours, book):
            side.reset()
        for i, (x, y) in enumerate(batches):
            order = (ours, book) if (i + repeat) % 2 == 0 else (book, ours)
            for side in order:
                torch.manual_seed(1000 * repeat + i)  # nothing random in a step; set anyway, the same for both
                side.step(x, y)
        print(f"  repeat {repeat + 1}/{args.repeats}: gptlib {statistics.fmean(ours.step_seconds[-1]):.3f} s/step, "
              f"book {statistics.fmean(book.step_seconds[-1]):.3f} s/step", flush=True)
    return ours, book


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="training steps per repeat (default 6)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the steps, from the start (default 3)")
    parser.add_argument("--max-minutes", type=float, default=9.0,
                        help="start no repeat that would end after this many minutes (default 9; "
                        "at least one repeat always runs)")
    parser.add_argument("--batch-size", type=int, default=8, help="messages per batch (default 8, the book's)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (default 16)")
    parser.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha, scale = alpha (default 16)")
    parser.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (default 5e-5, as printed)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (default 0.1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--data", default=str(SHARED_DATA), help="the SMSSpamCollection file")
    parser.add_argument("--save", help="write the measurements to this JSON file")
    args = parser.parse_args(argv)
    data_file = Path(args.data)
    if not data_file.is_file():
        print(f"skipped: the benchmark needs the real SMS data at {data_file} (or --data PATH).")
        return 0
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")

    torch.set_num_threads(args.threads)
    batches, max_length = first_batches(data_file, args.steps, args.batch_size)
    print(f"machine: {os.cpu_count()} cores (shared with other users' jobs), torch {torch.__version__}, "
          f"{args.threads} threads, Python {sys.version.split()[0]}")
    print(f"run: {MODEL} shape, random weights (seed 123), LoRA rank {args.rank}, alpha {args.alpha:g} "
          f"(scale alpha), AdamW lr {args.lr:g}, wd {args.weight_decay:g}; {args.steps} steps of "
          f"{args.batch_size} x {max_length} tokens (real SMS data), {args.repeats} repeats, sides alternating")
    ours, book = run(args, batches)

    diffs = [abs(a - b) for ro, rb in zip(ours.losses, book.losses, strict=True) for a, b in zip(ro, rb, strict=True)]
    max_diff = max(diffs)
    repeat_spread = max(abs(a - b) for r in ours.losses[1:] for a, b in zip(r, ours.losses[0], strict=True)) \
        if len(ours.losses) > 1 else 0.0
    o, b = ours.per_step(), book.per_step()
    print()
    print(f"{'side':8s} {'s/step':>8s} {'min':>7s} {'max':>7s} {'trainable':>11s} {'first loss':>11s} {'last loss':>10s}")
    for side in (ours, book):
        flat = [t for r in side.step_seconds for t in r]
        print(f"{side.name:8s} {side.per_step():8.3f} {min(flat):7.3f} {max(flat):7.3f} {side.n_trainable:11,} "
              f"{side.losses[0][0]:11.6f} {side.losses[0][-1]:10.6f}")
    print(f"ratio (book s/step / gptlib s/step): {b / o:.2f}")
    print(f"max loss difference gptlib vs book over {len(diffs)} steps: {max_diff:.2e} "
          f"(gptlib repeat to repeat: {repeat_spread:.2e})")
    print(f"ours is {b / o:.2f}x the book's speed")
    if args.save:
        record = {
            "settings": {**{k: v for k, v in vars(args).items() if k != "save"}, "model": MODEL,
                         "weights": "random (seed 123)", "max_length": max_length, "scaling": "alpha"},
            "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
                        "note": "shared machine: other jobs ran on the same cores"},
            "sides": {s.name: {"seconds_per_step": s.per_step(), "step_seconds": s.step_seconds,
                               "losses": s.losses, "trainable": s.n_trainable} for s in (ours, book)},
            "speed_ratio": b / o, "max_loss_difference": max_diff, "repeat_spread": repeat_spread,
        }
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
