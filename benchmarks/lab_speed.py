"""The lab's loop, timed: change one setting, run again, compare. On the real SMS data with
gpt2-small-shaped random weights (seed 123) and the book's settings, 2 threads.

Each part runs in its own process with its own, initially empty, store of frozen activations
(``GPTLIB_STORE_DIR``), so first runs are first runs:

1. **session**: one process, as a lab kernel: fast mode's first run, a re-run with only the
   learning rate changed, a dropout-0.1 run (fast mode's scope: only the parts that train);
   then exact mode's first run, its learning-rate re-run, and a re-run of the first settings,
   whose losses and accuracies must equal the cold run's;
2. **new process**: a fresh process over the session's disk store: the learning-rate re-run;
3. **lab memory**: a fresh process and store running 5 lab runs through the lab's engine,
   peak resident memory against the book's run's plus the store's size;
4. **book memory**: the book's chapter code (``llms-from-scratch``) on 40 batches of the full
   training set (the same per-batch memory as its full run), peak resident memory;
5. the cost of one redraw of the lab's live curves, SVG against matplotlib.

    python benchmarks/lab_speed.py --save benchmarks/results/lab_speed.json   # about 25 minutes on 2 cores
    python benchmarks/lab_speed.py --parts lab_memory --reuse benchmarks/results/lab_speed.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parents[0].parent / "shared" / "data" / "sms_spam_collection" / "SMSSpamCollection"


def _cfg(**changes):
    from gptlib.finetune import FinetuneConfig

    base = dict(weights="random", data=str(SHARED_DATA), output=tempfile.mkdtemp(prefix="lab-speed-"),
                figures=None, device="cpu")
    if changes.get("speed") == "fast":  # the fast preset: last real token, per-batch padding
        return FinetuneConfig.preset("fast", **{**base, **changes})
    return FinetuneConfig(**{**base, **changes})


def _timed(cfg) -> tuple[float, object]:
    from gptlib.finetune import run_finetune

    start = time.perf_counter()
    result = run_finetune(cfg, progress=False, verbose=False, save=False)
    return time.perf_counter() - start, result


def _curves(r) -> dict:
    return {"train_losses": r.train_losses, "val_losses": r.val_losses, "train_accs": r.train_accs,
            "val_accs": r.val_accs, "final": [r.train_accuracy, r.val_accuracy, r.test_accuracy]}


def part_session() -> dict:
    from gptlib.speed.store import default_store

    out = {}
    out["fast_first"], _ = _timed(_cfg(speed="fast"))
    out["fast_rerun"], _ = _timed(_cfg(speed="fast", lr=1e-4))
    out["fast_dropout"], r = _timed(_cfg(speed="fast", lr=1e-4, drop_rate=0.1))
    out["fast_dropout_scope"] = r.config["dropout_scope"]
    out["store_fast_bytes"] = default_store().ram_bytes()
    out["exact_first"], cold = _timed(_cfg(speed="exact"))
    out["exact_rerun"], _ = _timed(_cfg(speed="exact", lr=1e-4))
    _, again = _timed(_cfg(speed="exact"))
    a, b = _curves(cold), _curves(again)
    out["exact_max_diff"] = max(abs(x - y) for k in a for x, y in zip(a[k], b[k], strict=True))
    out["store_ram_bytes"] = default_store().ram_bytes()
    out["store_disk_bytes"] = default_store().disk_bytes()
    out["store_entries"] = {p.name: p.stat().st_size for p in default_store().disk_entries()}
    return out


def part_new_process() -> dict:
    from gptlib.speed.store import default_store

    seconds, _ = _timed(_cfg(speed="fast", lr=1e-4))
    return {"new_process_rerun": seconds, "store_stats": default_store().stats}


def part_lab_memory() -> dict:
    from gptlib.lab.engine import RunEngine
    from gptlib.speed.store import default_store

    engine = RunEngine(_cfg(speed="fast"))
    changes = [{}, {"lr": 1e-4}, {"drop_rate": 0.1}, {"epochs": 3}, {"seed": 124}]
    start = time.perf_counter()
    for change in changes:
        cfg = _cfg(speed="fast", **change)
        assert engine.start(cfg, wait=True)
        if engine.last_error is not None:
            raise engine.last_error
    return {"lab_runs": len(engine.runs), "lab_seconds": time.perf_counter() - start,
            "lab_store_bytes": default_store().ram_bytes(),
            "lab_test": engine.runs["test_acc"].astype(float).tolist()}


def part_book_memory() -> dict:
    sys.path.insert(0, str(HERE))
    from finetune_speed import _run_book

    with tempfile.TemporaryDirectory() as tmp:
        result = _run_book(1, None, Path(tmp), steps_limit=40)
    return {"book_steps": result["steps"], "book_max_length": result["max_length"]}


PARTS = {"session": part_session, "new_process": part_new_process, "lab_memory": part_lab_memory,
         "book_memory": part_book_memory}


def spawn(part: str, store: str, out: Path) -> dict:
    """Run one part in a child process over ``store``; add its peak resident memory (MiB)."""
    result_file = out / f"{part}.json"
    cmd = [sys.executable, __file__, "--part", part, "--out", str(out)]
    proc = subprocess.Popen(cmd, env={**os.environ, "GPTLIB_STORE_DIR": store})
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"part {part} failed (status {status})")
    result = json.loads(result_file.read_text())
    result[f"{part}_peak_mib"] = usage.ru_maxrss / 1024
    return result


def chart_costs() -> tuple[float, float]:
    """Milliseconds per redraw of the two live charts with 14 loss and 5 accuracy points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gptlib.lab.charts import curves_html

    curves = {"eval_examples": list(range(0, 5200, 400)), "train_losses": [0.5] * 13, "val_losses": [0.6] * 13,
              "epoch_examples": [1040 * i for i in range(1, 6)], "train_accs": [0.9] * 5, "val_accs": [0.8] * 5}
    start = time.perf_counter()
    for _ in range(50):
        curves_html(curves, "run 1")
    svg = (time.perf_counter() - start) / 50 * 1000
    start = time.perf_counter()
    for _ in range(5):
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
        a.plot(curves["eval_examples"], curves["train_losses"], marker="o")
        b.plot(curves["epoch_examples"], curves["val_accs"], marker="o")
        fig.savefig(io.BytesIO(), format="png", dpi=100)
        plt.close(fig)
    png = (time.perf_counter() - start) / 5 * 1000
    return svg, png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--save", help="write the measurements to this JSON file")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="measure only these parts (the others are taken from --reuse)")
    parser.add_argument("--reuse", help="a JSON file written by --save, for the parts not measured")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    if not SHARED_DATA.exists():
        raise SystemExit(f"The benchmark needs the real data at {SHARED_DATA}.")
    if args.part:
        Path(args.out, f"{args.part}.json").write_text(json.dumps(PARTS[args.part]()))
        return
    r: dict = json.loads(Path(args.reuse).read_text()) if args.reuse else {}
    if "new_process" in args.parts and "session" not in args.parts:
        raise SystemExit("new_process reads the session's disk store: measure both, or neither.")
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as store, \
            tempfile.TemporaryDirectory() as lab_store:
        for part, where in (("session", store), ("new_process", store), ("lab_memory", lab_store),
                            ("book_memory", lab_store)):
            if part in args.parts:
                r.update(spawn(part, where, Path(tmp)))
                print(f"  {part} done", flush=True)
    svg_ms, png_ms = chart_costs()
    if args.save:
        Path(args.save).write_text(json.dumps(r, indent=1))
    mib = 2**20
    book_plus_store = r["book_memory_peak_mib"] + r["lab_store_bytes"] / mib
    rows = [
        ("fast: first run", r["fast_first"], "", ""),
        ("fast: re-run, lr changed", r["fast_rerun"], f"{r['fast_first'] / r['fast_rerun']:.1f}x faster",
         "<= 10 s"),
        ("fast: new process, warm disk store", r["new_process_rerun"],
         f"{r['new_process_rerun'] / r['fast_rerun']:.2f}x the re-run", "<= 1.5x"),
        (f"fast: dropout 0.1 (scope '{r['fast_dropout_scope']}')", r["fast_dropout"],
         f"{r['fast_dropout'] / r['fast_rerun']:.2f}x the re-run", "<= 1.5x"),
        ("exact: first run", r["exact_first"], "", ""),
        ("exact: re-run, lr changed", r["exact_rerun"], f"{r['exact_first'] / r['exact_rerun']:.1f}x faster",
         "<= 30 s"),
    ]
    print()
    print(f"{'measurement':42s} {'seconds':>8s}  {'ratio':26s} target")
    for name, seconds, ratio, target in rows:
        print(f"{name:42s} {seconds:8.1f}  {ratio:26s} {target}")
    print(f"exact: re-run from the store vs cold run, max difference of losses and accuracies: "
          f"{r['exact_max_diff']:.1e} (target <= 1e-6)")
    print(f"memory: 5 lab runs in one process peak {r['lab_memory_peak_mib']:,.0f} MiB; the book's run "
          f"{r['book_memory_peak_mib']:,.0f} MiB + the store's {r['lab_store_bytes'] / mib:,.0f} MiB = "
          f"{book_plus_store:,.0f} MiB (target: within it)")
    print(f"store after the session: {r['store_ram_bytes'] / mib:,.1f} MiB in memory, "
          f"{r['store_disk_bytes'] / mib:,.1f} MiB on disk in {len(r['store_entries'])} entries "
          f"(fast mode's set: {r['store_fast_bytes'] / mib:,.1f} MiB)")
    print(f"new process store hits: {r['store_stats']}")
    print(f"live curves, one redraw: SVG {svg_ms:.2f} ms, matplotlib PNG {png_ms:.0f} ms")


if __name__ == "__main__":
    main()
