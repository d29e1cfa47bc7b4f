"""A classroom's sizing, measured: N lab kernels at once, with the shared weights and store on and off.

For each N (1, 2, 4, 8 by default) the benchmark starts N workers at once (a barrier: each
waits for one file), and each does what a student's lab kernel does for the lab's first two
experiments: fast mode's first run on the shipped SMS data (random gpt2-small-shaped weights,
seed 123), then the same with only the learning rate changed. A worker stands in for a
kernel: it drives the lab's own engine (``gptlib.lab.engine.RunEngine``, which calls
``run_finetune(cfg, save=False)`` as the lab's Run button does), without the widgets. Each
student has a ``GPTLIB_HOME`` of its own, so nothing is shared except what the two
mechanisms share. Three modes per N:

* **shared**: ``GPTLIB_MAP_WEIGHTS=1`` (base weights mapped from one file) and
  ``GPTLIB_SHARED_STORE`` on a folder the teacher warmed once, before the timed part, with
  ``python -m gptlib cache warm --into FOLDER``;
* **queued**: shared, and runs take turns as the classroom hub sets them up by default: one
  slot a core (``GPTLIB_RUN_SLOTS``, see ``gptlib.support.run_slots``), one thread a kernel;
* **off**: ``GPTLIB_MAP_WEIGHTS=0`` and no shared store: each kernel builds and computes its own.

Measured per N: the peak of the workers' summed PSS (``/proc/<pid>/smaps_rollup``, sampled
every 0.5 s, children included: shared pages count once over the machine, unlike RSS), each
run's time (from the click: a queued run's includes its wait) and its test accuracy. Before
the runs each worker warms up as the lab does when it opens (timed apart). Before the runs, the floor of a re-run on this machine:
one fused AdamW step over the trainable parameters, plus reading the weights and writing and
reading the gradients once at the measured copy bandwidth, times the run's steps. The N=1
workers also say where their re-run's time went (from the engine's events) and time their
data loader alone. From the figures: the targets, and a sizing table for 10, 30 and 100
students with Zero to JupyterHub's ``singleuser.memory`` guarantee and limit.

    python benchmarks/classroom.py --save benchmarks/results/classroom.json   # about 30-45 minutes on 2 cores
    python benchmarks/classroom.py --quick --ns 1,2 --model-size "gpt2-tiny (test)"   # a smoke check
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from pss import PssSampler, machine_ram, rollup

from gptlib.support.run_slots import make_slots

RERUN_LR = 1e-4  # the second experiment: only the learning rate changes
HEADROOM = 1.5  # on RAM and on the memory limit
RERUN_SECONDS = 60  # the sizing keeps a re-run under this ...
ACTIVE_SHARE = 1 / 3  # ... while this share of the class runs at once
CLASSES = (10, 30, 100)
MIB = 2**20


# -- the worker: one student's lab kernel ---------------------------------------------------------

def _lab_config(model_size: str, quick: bool, output: str, **changes):
    from gptlib.data import shipped_spam_file
    from gptlib.finetune import FinetuneConfig

    limits = {"train_limit": 200, "epochs": 1} if quick else {}
    return FinetuneConfig.preset("fast", weights="random", data=str(shipped_spam_file()), figures=None,
                                 device="cpu", output=output, model_size=model_size, **limits, **changes)


def _phases(events: list[tuple[str, float]]) -> dict:
    """Where one run's time went, from the engine's events: the time before each event is the
    event's (a step's, an evaluation's, an epoch's accuracy passes'), and the first step's
    beyond a typical one is the setup (model, weights, frozen activations, data)."""
    out = {"eval": 0.0, "epoch": 0.0, "final": 0.0, "n_eval": 0, "n_epoch": 0}
    steps, prev = [], events[0][1]
    for kind, t in events[1:]:
        if kind == "step":
            steps.append(t - prev)
        elif kind in ("eval", "epoch"):
            out[kind] += t - prev
            out[f"n_{kind}"] += 1
        elif kind == "finished":
            out["final"] = t - prev  # the accuracies on the whole of each split
        prev = t
    typical = statistics.median(steps[1:]) if len(steps) > 1 else 0.0
    out["setup"] = steps[0] - typical if steps else 0.0
    out["steps"] = sum(steps) - out["setup"]
    out["n_steps"] = len(steps)
    return out


def worker(ready: Path, go: Path, model_size: str, quick: bool, threads: int, time_loader: bool) -> dict:
    from gptlib.lab.engine import RunEngine
    from gptlib.speed.store import default_store

    torch.set_num_threads(threads)
    output = tempfile.mkdtemp(prefix="classroom-run-")
    first = _lab_config(model_size, quick, output)
    engine = RunEngine(first)
    events: list[tuple[str, float]] = []

    def note(event) -> None:
        if event.kind in ("started", "step", "eval", "epoch", "finished"):
            events.append((event.kind, time.perf_counter()))

    engine.subscribe(note)
    began = time.perf_counter()
    engine.warm_up(first).join()  # as the lab's panel does when it opens, before any click
    warm = time.perf_counter() - began
    ready.touch()
    while not go.exists():
        time.sleep(0.05)
    out: dict = {"pid": os.getpid(), "threads": threads, "warm_up": warm}
    for name, cfg in (("first", first), ("rerun", _lab_config(model_size, quick, output, lr=RERUN_LR))):
        events.clear()
        start = time.perf_counter()
        engine.start(cfg, wait=True)
        out[name] = time.perf_counter() - start
        if engine.last_error is not None:
            raise engine.last_error
        out[f"{name}_phases"] = _phases(events)
        out[f"{name}_store"] = dict(default_store().stats)
    out["test_acc"] = engine.runs["test_acc"].astype(float).tolist()
    if time_loader:  # the data loader alone: the re-run's training batches, every epoch
        train_loader = engine.result.loaders[0]
        start = time.perf_counter()
        for _ in range(engine.current.epochs):
            for _batch in train_loader:
                pass
        out["loader"] = time.perf_counter() - start
    return out


# -- the machine's floor --------------------------------------------------------------------------

def floor_probe(model_size: str, threads: int) -> dict:
    """Seconds of one fused AdamW step over the trainable parameters (the top block, the final
    norm, a 2-class head), the copy bandwidth, and the per-step floor from both."""
    from gptlib.model import LayerNorm, TransformerBlock, get_config

    torch.set_num_threads(threads)
    cfg = get_config(model_size)
    top = torch.nn.ModuleList([TransformerBlock(cfg), LayerNorm(cfg["emb_dim"]), torch.nn.Linear(cfg["emb_dim"], 2)])
    params = list(top.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.1, fused=True)
    for _ in range(5):
        optimizer.step()
    runs, start = 0, time.perf_counter()
    while runs < 20 or time.perf_counter() - start < 2:
        optimizer.step()
        runs += 1
    adamw = (time.perf_counter() - start) / runs
    src = torch.ones(2**26)  # 256 MiB, well beyond any cache
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    bandwidth = 2 * src.nbytes / best  # bytes read plus bytes written, per second
    n_params = sum(p.numel() for p in params)
    traffic = 3 * 4 * n_params / bandwidth  # fp32 weights read, gradients written and read
    return {"params": n_params, "adamw_step": adamw, "bandwidth": bandwidth, "traffic_step": traffic,
            "floor_step": adamw + traffic, "threads": threads}


def fixed_cost() -> dict:
    """A lab kernel's memory that no sharing between processes can remove, measured in a fresh
    process: the interpreter with torch, gptlib's lab and torch's optimizer machinery imported
    and one matrix product run (anonymous PSS, MiB), beside what training holds per kernel
    whatever is shared: the trainable copy, its gradients and AdamW's two states."""
    import torch._dynamo  # noqa: F401  (torch.optim's first optimizer imports it)

    from gptlib.lab import engine  # noqa: F401
    from gptlib.speed import warm_process  # noqa: F401

    torch.randn(512, 768) @ torch.randn(768, 3072)
    return {"anon": rollup(os.getpid())["Pss_Anon"] * 1024}


# -- running the groups ---------------------------------------------------------------------------

def _clean_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTLIB_")}
    return {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def warm_shared_store(folder: Path, home: Path, model_size: str, quick: bool) -> dict:
    """The teacher's one-off: ``python -m gptlib cache warm --into FOLDER`` for the lab's data."""
    cmd = [sys.executable, "-m", "gptlib", "cache", "warm", "--into", str(folder), "--speed", "fast",
           "--weights", "random", "--model-size", model_size] + (["--train-limit", "200"] if quick else [])
    start = time.perf_counter()
    done = subprocess.run(cmd, env={**_clean_env(len(os.sched_getaffinity(0))), "GPTLIB_HOME": str(home)},
                          capture_output=True, text=True)
    files = sorted(folder.rglob("*")) if folder.exists() else []
    return {"ok": done.returncode == 0, "seconds": time.perf_counter() - start,
            "bytes": sum(p.stat().st_size for p in files if p.is_file()),
            "error": "" if done.returncode == 0 else (done.stderr or done.stdout).strip()[-400:]}


def run_group(mode: str, n: int, threads: int, args, tmp: Path, shared: Path) -> dict:
    folder = tmp / f"{mode}-{n}"
    folder.mkdir()
    go = folder / "go"
    procs, logs = [], []
    for i in range(n):
        home = folder / f"student-{i}"
        home.mkdir()
        env = {**_clean_env(threads), "GPTLIB_HOME": str(home), "GPTLIB_MAP_WEIGHTS": "0" if mode == "off" else "1"}
        if mode == "queued":  # the hub's default: runs take turns, one a core (gptlib.support.run_slots)
            env["GPTLIB_RUN_SLOTS"] = str(tmp / "run-slots")
        if mode != "off":
            env["GPTLIB_SHARED_STORE"] = str(shared)
        cmd = [sys.executable, __file__, "--worker", str(folder / f"ready-{i}"), str(go),
               "--model-size", args.model_size, "--threads", str(threads)]
        cmd += (["--quick"] if args.quick else []) + (["--time-loader"] if n == 1 else [])
        out, err = open(folder / f"worker-{i}.out", "w"), open(folder / f"worker-{i}.err", "w")
        logs.append((out, err))
        procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=err))
    try:
        while not all((folder / f"ready-{i}").exists() for i in range(n)):
            _check_alive(procs, folder)
            time.sleep(0.1)
        sampler = PssSampler([p.pid for p in procs])
        sampler.sample()
        go.touch()
        while any(p.poll() is None for p in procs):
            sampler.sample()
            time.sleep(0.5)
        _check_alive(procs, folder)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for out, err in logs:
            out.close()
            err.close()
    workers = [json.loads((folder / f"worker-{i}.out").read_text().splitlines()[-1]) for i in range(n)]
    mapped = [sorted(sampler.mapped[p.pid]) for p in procs]
    return {"mode": mode, "n": n, "threads": threads, "pss_peak": sampler.peak["Pss"] * 1024,
            "pss_peak_parts": {k: v * 1024 for k, v in sampler.peak.items()},
            "pss_worker_peak": [sampler.worker_peak[p.pid] * 1024 for p in procs],
            "samples": sampler.samples, "workers": workers, "mapped": mapped,
            "mapped_distinct": len({f for files in mapped for f in files}),
            "mapped_in_homes": len({f for files in mapped for f in files if f.startswith(str(folder))})}


def _check_alive(procs: list[subprocess.Popen], folder: Path) -> None:
    for i, p in enumerate(procs):
        if p.poll() not in (None, 0):
            tail = (folder / f"worker-{i}.err").read_text()[-2000:]
            raise SystemExit(f"worker {i} of {folder.name} failed (status {p.returncode}):\n{tail}")


# -- the report -----------------------------------------------------------------------------------

def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(base, per student) of a straight line through (N, bytes), least squares."""
    if len(points) == 1:
        return 0.0, points[0][1] / points[0][0]
    mx = statistics.mean(n for n, _ in points)
    my = statistics.mean(b for _, b in points)
    slope = sum((n - mx) * (b - my) for n, b in points) / sum((n - mx) ** 2 for n, _ in points)
    return max(0.0, my - slope * mx), slope


def _gib(b: float) -> str:
    return f"{b / 2**30:.1f}G"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def report(r: dict) -> None:
    cores, groups, fl = r["cores"], r["groups"], r["floor"]
    by = {(g["mode"], g["n"]): g for g in groups}
    print()
    print(f"{'mode':9s} {'N':>3s} {'thr':>3s} {'PSS peak':>9s} {'per kernel':>10s} {'anon/file':>11s}  "
          f"{'first run s':>17s}  {'re-run s':>17s}  test acc")
    for g in groups:
        firsts, reruns = [w["first"] for w in g["workers"]], [w["rerun"] for w in g["workers"]]
        parts = g["pss_peak_parts"]
        accs = sorted({round(a, 3) for w in g["workers"] for a in w["test_acc"]})
        print(f"{g['mode']:9s} {g['n']:3d} {g['threads']:3d} {g['pss_peak'] / MIB:7,.0f}Mi "
              f"{g['pss_peak'] / g['n'] / MIB:8,.0f}Mi {parts['Pss_Anon'] / MIB:5,.0f}/{parts['Pss_File'] / MIB:<5,.0f}"
              f"  {statistics.mean(firsts):7.1f} (max {max(firsts):5.1f})  {statistics.mean(reruns):7.1f} "
              f"(max {max(reruns):5.1f})  {', '.join(f'{a:.3f}' for a in accs)}")
    for g in groups:
        if g["mode"] == "shared" and g["n"] > 1 and g["mapped_in_homes"] > 1:
            print(f"note: shared N={g['n']}: the workers map {g['mapped_distinct']} distinct .pt files, "
                  f"{g['mapped_in_homes']} of them in the students' own homes: those are not shared between students")
    if any(g["mode"] == "shared" and g["mapped_distinct"] == 0 for g in groups):
        print("note: no shared-mode worker mapped any .pt file: GPTLIB_MAP_WEIGHTS had no effect here")
    mode = "shared" if any(m == "shared" for m, _ in by) else "off"
    ns = sorted(n for m, n in by if m == mode)
    _targets(by, mode, ns, cores, fl, r.get("fixed"))
    if 1 in ns:
        _breakdown(by[(mode, 1)]["workers"][0], fl, mode)
    _sizing(r, by, mode, ns)


def _targets(by: dict, mode: str, ns: list[int], cores: int, fl: dict, fixed: dict | None) -> None:
    """One line per target: what was measured, the ratio, the target, PASS/MISS ("-": the
    target is for another N than the largest measured)."""
    rows, top, notes = [], max(ns), []
    if 1 in ns and top > 1:
        for m in ("shared", "off"):
            if (m, top) in by and (m, 1) in by:
                many, one = by[(m, top)]["pss_peak"], by[(m, 1)]["pss_peak"]
                rows.append((f"memory: {top} kernels vs 1, PSS at peak ({m})", f"{many / MIB:,.0f} vs {one / MIB:,.0f} MiB",
                             many / one, 2.5, (many <= 2.5 * one) if top == 8 and m == "shared" else None))
        if fixed and ("shared", 1) in by and ("shared", top) in by:
            # the best separate processes can do: every kernel pays its interpreter, torch and its
            # own training state; only the shared part (libraries, base file, store) is shared
            base, _ = _fit([(n, by[("shared", n)]["pss_peak"]) for n in ns if ("shared", n) in by])
            own = fixed["anon"] + 16 * fl["params"]  # fp32 weights, gradients, AdamW's two states
            best = (base + top * own) / (base + own)
            rows.append((f"  floor: one process a kernel, {own / MIB:,.0f} MiB each",
                         f"{(base + top * own) / MIB:,.0f} vs {(base + own) / MIB:,.0f} MiB", best, 2.5, None))
            notes.append(f"the memory floor: {base / MIB:,.0f} MiB shared (the line's base) + per kernel "
                         f"{fixed['anon'] / MIB:,.0f} MiB of interpreter, torch, gptlib and torch's optimizer "
                         f"machinery (a fresh process, measured) + {16 * fl['params'] / MIB:,.0f} MiB of training "
                         "state (weights, gradients, AdamW's two states), which no sharing between processes removes")
    if ("shared", 1) in by and ("off", 1) in by:
        new, today = by[("shared", 1)]["workers"][0]["first"], by[("off", 1)]["workers"][0]["rerun"]
        cold = by[("off", 1)]["workers"][0]["first"]
        warm = by[("shared", 1)]["workers"][0].get("warm_up", 0.0)
        rows.append(("first run, warm shared store vs today's re-run", f"{new:.1f} vs {today:.1f} s (first {cold:.0f})",
                     new / today, 1.0, new <= today))
        rows.append(("  the lab's warm-up when it opens, before the click", f"{warm:.1f} s", warm / today, 1.0, None))
    if 1 in ns:
        base = by[(mode, 1)]["workers"][0]
        for n in ns[1:]:
            slow = max(max(w[k] / base[k] for w in by[(mode, n)]["workers"]) for k in ("first", "rerun"))
            allowed = max(1.0, n / cores)
            rows.append((f"slowest run at N={n} vs N=1, over N/cores ({mode})", f"{slow:.2f}x / {allowed:.1f}",
                         slow / allowed, 1.0, slow <= allowed))
        if ("queued", 1) in by:  # the hub's default: every kernel on one thread, runs taking turns
            ref = by[("queued", 1)]["workers"][0]
            for n in (n for n in ns[1:] if ("queued", n) in by):
                slow = max(max(w[k] / ref[k] for w in by[("queued", n)]["workers"]) for k in ("first", "rerun"))
                allowed = max(1.0, n / cores)
                rows.append((f"slowest run at N={n} vs N=1, over N/cores (queued)", f"{slow:.2f}x / {allowed:.1f}",
                             slow / allowed, 1.0, slow <= allowed))
        rerun, steps = base["rerun"], base["rerun_phases"]["n_steps"]
        floor = steps * fl["floor_step"]
        rows.append((f"re-run vs its floor ({steps} fused AdamW steps + traffic)", f"{rerun:.1f} vs {floor:.1f} s",
                     rerun / floor, 2.0, rerun <= 2 * floor))
    print()
    print(f"{'target':50s} {'measured':>28s} {'ratio':>7s} {'target':>8s}")
    for name, measured, ratio, limit, ok in rows:
        print(f"{name:50s} {measured:>28s} {ratio:6.2f}x {'<= ' + format(limit, '.1f') + 'x':>8s}  {_verdict(ok)}")
    for note in notes:
        print(note)
    if ("shared", 1) in by:
        stats = by[("shared", 1)]["workers"][0]["first_store"]
        print(f"the store at the shared-mode first run (N=1): {', '.join(f'{k} {v}' for k, v in stats.items())}")


def _breakdown(w: dict, fl: dict, mode: str) -> None:
    ph, steps = w["rerun_phases"], w["rerun_phases"]["n_steps"]
    adamw, traffic, loader = steps * fl["adamw_step"], steps * fl["traffic_step"], w.get("loader", 0.0)
    rest = ph["steps"] - adamw - traffic - loader
    other = w["rerun"] - ph["setup"] - ph["steps"] - ph["eval"] - ph["epoch"] - ph["final"]
    print()
    print(f"where the re-run's {w['rerun']:.1f} s went (N=1, {mode}; from the lab engine's events):")
    lines = [
        ("setup: model, weights, frozen activations from the store, data", ph["setup"]),
        (f"training steps ({steps})", ph["steps"]),
        (f"  floor: fused AdamW over {fl['params'] / 1e6:.2f}M parameters, {fl['adamw_step'] * 1e3:.1f} ms a step", adamw),
        (f"  floor: weights read, gradients written and read at {fl['bandwidth'] / 1e9:.1f} GB/s", traffic),
        ("  the data loader (its batches alone, timed after the runs)", loader),
        ("  the rest: the trainable part's forward and backward, Python per step", rest),
        (f"loss evaluations every eval_freq steps ({ph['n_eval']})", ph["eval"]),
        (f"accuracy passes after each epoch ({ph['n_epoch']})", ph["epoch"]),
        ("final accuracies on the whole train, validation and test sets", ph["final"]),
        ("other (the engine's bookkeeping, thread start)", other),
    ]
    for name, seconds in lines:
        print(f"  {name:78s} {seconds:6.1f} s  {seconds / w['rerun'] * 100:3.0f}%")


def _sizing(r: dict, by: dict, mode: str, ns: list[int]) -> None:
    cores = r["cores"]
    base, per = _fit([(n, by[(mode, n)]["pss_peak"]) for n in ns])
    top = by[(mode, max(ns))]
    busy = min(top["n"] * top["threads"], cores)
    slowest = max(max(w["first"], w["rerun"]) for w in top["workers"])
    core_seconds = slowest * busy / top["n"]  # one run's CPU work when N kernels share the machine
    print()
    print(f"sizing ({mode} mode): summed PSS = {base / MIB:,.0f} MiB shared + {per / MIB:,.0f} MiB per kernel "
          f"(a straight line through N = {', '.join(map(str, ns))}); a run costs {core_seconds:.0f} core-seconds "
          f"(N={top['n']}, its slowest run)")
    print(f"assumptions: every kernel at its peak (RAM x {HEADROOM} headroom); {ACTIVE_SHARE:.0%} of the "
          f"class runs at once, each run in under {RERUN_SECONDS} s")
    print(f"{'students':>8s} {'RAM':>8s} {'cores':>6s}")
    for students in CLASSES:
        ram = (base + per * students) * HEADROOM
        active = math.ceil(students * ACTIVE_SHARE)
        need = max(1, math.ceil(active * core_seconds / RERUN_SECONDS))
        print(f"{students:8d} {_gib(ram):>8s} {need:6d}")
    unshared = by.get(("off", 1), by.get((mode, min(ns))))
    limit = unshared["pss_peak"] / unshared["n"] * HEADROOM
    print("Zero to JupyterHub (guarantee: the per-kernel increment with sharing; limit: one kernel's peak "
          f"without sharing x {HEADROOM}, as a pod's cgroup may be charged for the shared pages it touches first):")
    print(f"  singleuser:\n    memory:\n      guarantee: {_gib(per)}\n      limit: {_gib(limit)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("READY", "GO"), help=argparse.SUPPRESS)
    parser.add_argument("--time-loader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fixed-cost", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ns", default="1,2,4,8", help="numbers of kernels at once (default 1,2,4,8)")
    parser.add_argument("--modes", default="shared,queued,off",
                        help="any of shared, queued, off (default: all three)")
    parser.add_argument("--quick", action="store_true", help="200 training messages, 1 epoch: a check in minutes")
    parser.add_argument("--model-size", default="gpt2-small (124M)",
                        help="the model (default gpt2-small; 'gpt2-tiny (test)' for a smoke check)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: cores // N, at least 1)")
    parser.add_argument("--save", help="write the measurements to this JSON file")
    args = parser.parse_args()
    from gptlib.model import resolve_preset

    args.model_size = resolve_preset(args.model_size)
    if args.fixed_cost:
        print(json.dumps(fixed_cost()), flush=True)
        return
    if args.worker:
        result = worker(Path(args.worker[0]), Path(args.worker[1]), args.model_size, args.quick, args.threads,
                        args.time_loader)
        print(json.dumps(result), flush=True)
        return
    from gptlib.study.cost import machine_gflops

    ns = sorted({int(n) for n in args.ns.split(",")})
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - {"shared", "off", "queued"}:
        raise SystemExit(f"--modes takes shared and/or off; got {args.modes!r}")
    cores = len(os.sched_getaffinity(0))
    r: dict = {"cores": cores, "ram": machine_ram(), "torch": torch.__version__, "model_size": args.model_size,
               "quick": args.quick, "ns": ns, "modes": modes}
    torch.set_num_threads(args.threads or cores)
    r["matmul_gflops"] = machine_gflops()
    r["floor"] = fl = floor_probe(args.model_size, args.threads or cores)
    print(f"machine: {cores} cores, {r['ram'] / 2**30:.1f} GiB RAM, torch {torch.__version__}; fp32 matmul "
          f"{r['matmul_gflops']:.0f} GFLOP/s, copy {fl['bandwidth'] / 1e9:.1f} GB/s; fused AdamW over "
          f"{fl['params'] / 1e6:.2f}M parameters {fl['adamw_step'] * 1e3:.1f} ms ({fl['threads']} threads)")
    print(f"run: {args.model_size}, random weights (seed 123), fast mode, "
          f"{'200 training messages, 1 epoch (quick)' if args.quick else 'the book data, 5 epochs'}; "
          f"then the learning rate {RERUN_LR:g}")
    with tempfile.TemporaryDirectory(prefix="classroom-") as tmp_name:
        tmp = Path(tmp_name)
        shared = tmp / "shared-store"
        if {"shared", "queued"} & set(modes):
            (tmp / "teacher").mkdir()
            r["warm"] = warm_shared_store(shared, tmp / "teacher", args.model_size, args.quick)
            w = r["warm"]
            print(f"teacher's cache warm: {w['seconds']:.1f} s, {w['bytes'] / MIB:,.1f} MiB" if w["ok"] else
                  f"teacher's cache warm FAILED ({w['error'].splitlines()[-1] if w['error'] else '?'}): "
                  "the shared mode runs without a warm store")
            shared.mkdir(exist_ok=True)
        probe = subprocess.run([sys.executable, __file__, "--fixed-cost"], env=_clean_env(1),
                               capture_output=True, text=True, check=True)
        r["fixed"] = json.loads(probe.stdout.splitlines()[-1])
        r["groups"] = []
        if "queued" in modes:
            make_slots(tmp / "run-slots", cores)
        plan = [(n, mode, 1 if mode == "queued" else args.threads or max(1, cores // n)) for n in ns for mode in modes]
        for n, mode, threads in plan:
            g = run_group(mode, n, threads, args, tmp, shared)
            r["groups"].append(g)
            print(f"  {mode:6s} N={n}: PSS peak {g['pss_peak'] / MIB:,.0f} MiB, runs "
                  f"{max(w['first'] for w in g['workers']):.1f} s / {max(w['rerun'] for w in g['workers']):.1f} s "
                  f"(slowest first / re-run)", flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(r, indent=1))
    report(r)


if __name__ == "__main__":
    main()
