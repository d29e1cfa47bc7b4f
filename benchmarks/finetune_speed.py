"""The book's fine-tuning run against gptlib's, side by side, on the real SMS data.

Each variant runs in its own process (so peak memory is measured per run) with the same
gpt2-small-shaped random weights (``torch.manual_seed(123)``; both models create their
weights identically), the book's seeds and settings:

* ``book``: the book's implementation (``llms_from_scratch.ch06``, installed with --no-deps);
* ``exact``: gptlib, ``speed="exact"`` (same settings, same results, reused activations);
* ``fast``: gptlib, ``speed="fast"`` (last real token, per-batch padding, activations kept in
  bf16 and computed in bf16 where the CPU/GPU does that fast; with these settings the batches
  are the book's, as padding costs next to nothing).

    python benchmarks/finetune_speed.py            # the full 5-epoch run (about 50 min on 2 cores)
    python benchmarks/finetune_speed.py --quick    # about 10 min: 1 epoch on 200 training messages
    python benchmarks/finetune_speed.py --accuracy-seeds 1 2   # also test accuracy on other weights

The "work" column is a model of the arithmetic each variant needs, not a measurement.

The last line reads ``book-exact speedup N.NNx, fast-mode speedup N.NNx``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "sms_spam_collection" / "SMSSpamCollection"


def matmul_gflops(dtype: torch.dtype = torch.float32, seconds: float = 2.0) -> float:
    """This machine's matmul rate on the shapes of a GPT-2 small feed-forward layer."""
    a, b = torch.randn(960, 768, dtype=dtype), torch.randn(768, 3072, dtype=dtype)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 960 * 768 * 3072 * n / (time.perf_counter() - start) / 1e9


def block_flops(tokens: int, context: int, d: int = 768) -> float:
    """Forward FLOPs of one transformer block over ``tokens`` tokens that see ``context`` keys."""
    return tokens * (24 * d * d + 4 * context * d)


def work_flops(variant: str, lengths: dict[str, list[int]], max_length: int, steps: int,
               eval_batches: int, batch: int = 8, layers: int = 12) -> float:
    """Arithmetic each variant has to do (a model of the work, not a measurement)."""
    if variant == "book":  # every forward runs all blocks on all padded positions
        fwd_batches = steps + eval_batches
        return fwd_batches * layers * block_flops(batch * max_length, max_length) + \
            steps * 2 * block_flops(batch * max_length, max_length)
    unique = lengths["unique_padded" if variant == "exact" else "unique_real"]
    prefix = sum(block_flops(n, n) * (layers - 1) for n in unique)
    mean = sum(unique) / len(unique)
    per_batch_top = batch * mean * 2 * 768 * 768 * 2 + batch * block_flops(1, mean)  # K,V all; rest 1 pos
    return prefix + (steps * 3 + eval_batches) * per_batch_top


def run_variant(variant: str, quick: bool, out: Path, seed: int = 123) -> dict:
    """One run, in this process; returns its measurements. ``seed`` (gptlib's variants only)
    seeds the random weights, the head, the batch order and training, as the book's 123 does."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    epochs = 1 if quick else 5
    train_limit = 200 if quick else None
    start = time.perf_counter()
    if variant == "book":
        result = _run_book(epochs, train_limit, out)
    else:
        from gptlib.finetune import FinetuneConfig, run_finetune

        cfg = FinetuneConfig.preset("fast" if variant == "fast" else "book", model_size="gpt2-small (124M)",
                                    weights="random", epochs=epochs, data=str(SHARED_DATA),
                                    output=str(out / variant), figures=None, speed=variant,
                                    train_limit=train_limit, device="cpu", seed=seed)
        r = run_finetune(cfg, progress=False, verbose=False, save=False)
        result = {"train": r.train_accuracy, "val": r.val_accuracy, "test": r.test_accuracy,
                  "train_losses": r.train_losses, "max_length": r.max_length,
                  "steps": r.examples_seen // 8}
    result["seconds"] = time.perf_counter() - start
    return result


def _run_book(epochs: int, train_limit: int | None, out: Path, steps_limit: int | None = None) -> dict:
    """The book's chapter code on the real data. ``steps_limit``: train on only that many batches
    of the full training set (same max_length, same per-batch memory; for peak-memory checks)."""
    import pandas as pd
    from llms_from_scratch import ch06
    from llms_from_scratch.ch04 import GPTModel
    from torch.utils.data import DataLoader

    from gptlib.tokenizer import get_tokenizer  # the same ranks as tiktoken's "gpt2", offline

    df = pd.read_csv(SHARED_DATA, sep="\t", header=None, names=["Label", "Text"])
    balanced = ch06.create_balanced_dataset(df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train_df, val_df, test_df = ch06.random_split(balanced, 0.7, 0.1)
    if train_limit:
        train_df = train_df.iloc[:train_limit]
    folder = out / "book"
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("train", train_df), ("validation", val_df), ("test", test_df)):
        frame.to_csv(folder / f"{name}.csv", index=None)
    tok = get_tokenizer()
    train_ds = ch06.SpamDataset(folder / "train.csv", tok)
    val_ds = ch06.SpamDataset(folder / "validation.csv", tok, max_length=train_ds.max_length)
    test_ds = ch06.SpamDataset(folder / "test.csv", tok, max_length=train_ds.max_length)
    torch.manual_seed(123)
    if steps_limit is not None:
        train_ds = torch.utils.data.Subset(train_ds, range(8 * steps_limit))
    train_loader = DataLoader(train_ds, batch_size=8, shuffle=True, num_workers=0, drop_last=True)
    val_loader = DataLoader(val_ds, batch_size=8, num_workers=0)
    test_loader = DataLoader(test_ds, batch_size=8, num_workers=0)
    cfg = {"vocab_size": 50257, "context_length": 1024, "drop_rate": 0.0, "qkv_bias": True,
           "emb_dim": 768, "n_layers": 12, "n_heads": 12}
    torch.manual_seed(123)
    model = GPTModel(cfg)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    torch.manual_seed(123)
    model.out_head = torch.nn.Linear(768, 2)
    for p in (*model.trf_blocks[-1].parameters(), *model.final_norm.parameters()):
        p.requires_grad = True
    torch.manual_seed(123)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    train_losses, _, _, _, seen = ch06.train_classifier_simple(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=epochs, eval_freq=50, eval_iter=5)
    return {"train": ch06.calc_accuracy_loader(train_loader, model, "cpu"),
            "val": ch06.calc_accuracy_loader(val_loader, model, "cpu"),
            "test": ch06.calc_accuracy_loader(test_loader, model, "cpu"),
            "train_losses": train_losses, "max_length": val_ds.max_length, "steps": seen // 8}


def spawn(variant: str, quick: bool, out: Path, seed: int = 123) -> dict:
    """Run a variant in a child process; add its peak resident memory."""
    result_file = out / f"{variant}-{seed}.json"
    cmd = [sys.executable, __file__, "--variant", variant, "--out", str(out), "--seed", str(seed)]
    cmd += ["--quick"] if quick else []
    # A fresh, empty store of frozen activations for each child: a first run is measured as a
    # first run, never helped by an earlier one's stored activations.
    with tempfile.TemporaryDirectory(prefix="gptlib-bench-store-") as store:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env={**os.environ, "GPTLIB_STORE_DIR": store})
        _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"variant {variant} failed (status {status})")
    result = json.loads(result_file.read_text())
    result["peak_mib"] = usage.ru_maxrss / 1024
    return result


def lengths_of_data(quick: bool) -> dict[str, list[int]]:
    from gptlib.data import create_balanced_dataset, map_labels, random_split, read_sms_spam
    from gptlib.tokenizer import get_tokenizer

    tok = get_tokenizer()
    train, val, test = random_split(map_labels(create_balanced_dataset(read_sms_spam(SHARED_DATA))), 0.7, 0.1)
    if quick:
        train = train.iloc[:200]
    texts = list(dict.fromkeys([*train["Text"], *val["Text"], *test["Text"]]))
    real = [len(tok.encode(t, disallowed_special=())) for t in texts]
    max_len = max(len(tok.encode(t, disallowed_special=())) for t in train["Text"])
    return {"unique_real": [min(n, max_len) for n in real], "unique_padded": [max_len] * len(real),
            "n_train": len(train), "n_val": len(val), "n_test": len(test), "max_length": max_len}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch on 200 training messages")
    parser.add_argument("--variant", choices=["book", "exact", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=123, help=argparse.SUPPRESS)
    parser.add_argument("--accuracy-seeds", nargs="*", type=int, default=[], metavar="SEED",
                        help="after the timed runs, compare the test accuracy of the book's settings "
                        "(run as 'exact', whose results equal the book's) and of fast mode on "
                        "random weights made with these other seeds (about 10 min per seed)")
    parser.add_argument("--only", nargs="+", default=["book", "exact", "fast"], help="variants to run")
    parser.add_argument("--save", help="write every variant's measurements to this JSON file")
    parser.add_argument("--book-from", help="take the book's measurements from a JSON file written by "
                        "--save (the book's run takes ~40 min here) instead of running it again")
    args = parser.parse_args()
    if not SHARED_DATA.exists():
        raise SystemExit(f"The benchmark needs the real data at {SHARED_DATA}.")
    if args.variant:  # child process
        out = Path(args.out)
        result = run_variant(args.variant, args.quick, out, args.seed)
        (out / f"{args.variant}-{args.seed}.json").write_text(json.dumps(result))
        return

    torch.set_num_threads(2)
    rate = matmul_gflops()
    info = lengths_of_data(args.quick)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, 2 threads; "
          f"fp32 matmul {rate:.0f} GFLOP/s, bf16 {matmul_gflops(torch.bfloat16, 1.0):.0f} GFLOP/s")
    print(f"run: gpt2-small shape, random weights (seed 123), {'1 epoch, 200 training messages' if args.quick else '5 epochs'}; "
          f"{info['n_train']}/{info['n_val']}/{info['n_test']} messages, max_length {info['max_length']}")
    results = {}
    if args.book_from:
        results["book"] = json.loads(Path(args.book_from).read_text())["book"]
        print(f"  book  taken from {args.book_from}: {results['book']['seconds']:.1f} s")
        args.only = [v for v in args.only if v != "book"]
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.only:
            results[variant] = spawn(variant, args.quick, Path(tmp))
            r = results[variant]
            print(f"  {variant:5s} done in {r['seconds']:.1f} s", flush=True)

    if args.save:
        Path(args.save).write_text(json.dumps({**results, "quick": args.quick, "matmul_gflops": rate}))
    steps = next(iter(results.values()))["steps"]
    n_train_batches = info["n_train"] // 8
    eval_batches = (steps // 50 + 1) * 10 + (1 if args.quick else 5) * 10 + \
        n_train_batches + -(-info["n_val"] // 8) + -(-info["n_test"] // 8)
    print()
    print(f"{'variant':8s} {'time s':>8s} {'speedup':>8s} {'train %':>8s} {'val %':>7s} {'test %':>7s} "
          f"{'peak MiB':>9s} {'work TFLOP':>10s} {'GFLOP/s':>8s} {'of peak':>7s}")
    book_t = results.get("book", {}).get("seconds")
    for variant, r in results.items():
        flops = work_flops(variant, info, info["max_length"], steps, eval_batches)
        speed = f"{book_t / r['seconds']:.2f}x" if book_t else "-"
        achieved = flops / r["seconds"] / 1e9
        print(f"{variant:8s} {r['seconds']:8.1f} {speed:>8s} {100 * r['train']:8.2f} {100 * r['val']:7.2f} "
              f"{100 * r['test']:7.2f} {r['peak_mib']:9.0f} {flops / 1e12:10.1f} {achieved:8.0f} {achieved / rate:7.0%}")
    if "book" in results and "exact" in results:
        diff = max((abs(a - b) for a, b in zip(results["book"]["train_losses"], results["exact"]["train_losses"])),
                   default=float("nan"))
        same = all(results["book"][k] == results["exact"][k] for k in ("train", "val", "test"))
        print(f"book vs exact: max train-loss difference {diff:.2e}; final accuracies identical: {same}")
    exact = book_t / results["exact"]["seconds"] if book_t and "exact" in results else float("nan")
    fast = book_t / results["fast"]["seconds"] if book_t and "fast" in results else float("nan")
    if args.accuracy_seeds:
        compare_accuracy(args.accuracy_seeds, args.quick, results)
    print(f"book-exact speedup {exact:.2f}x, fast-mode speedup {fast:.2f}x")


def compare_accuracy(seeds: list[int], quick: bool, results: dict) -> None:
    """Test accuracy of the book's settings and of fast mode, seed by seed (123 from the timed runs)."""
    rows = []
    if "exact" in results and "fast" in results:
        rows.append((123, results["exact"]["test"], results["fast"]["test"]))
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            book_settings, fast = (spawn(v, quick, Path(tmp), seed)["test"] for v in ("exact", "fast"))
            rows.append((seed, book_settings, fast))
            print(f"  seed {seed}: book settings {100 * book_settings:.2f}%, fast {100 * fast:.2f}%", flush=True)
    print()
    print(f"{'seed':>6s} {'book settings test %':>21s} {'fast test %':>12s} {'difference':>11s}")
    for seed, book_settings, fast in rows:
        print(f"{seed:6d} {100 * book_settings:21.2f} {100 * fast:12.2f} {100 * (fast - book_settings):+11.2f}")
    mean_book = sum(r[1] for r in rows) / len(rows)
    mean_fast = sum(r[2] for r in rows) / len(rows)
    print(f"{'mean':>6s} {100 * mean_book:21.2f} {100 * mean_fast:12.2f} {100 * (mean_fast - mean_book):+11.2f}")


if __name__ == "__main__":
    main()
