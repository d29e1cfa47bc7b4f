"""The lab's run engine, with no widgets: runs in a background thread, Stop, each run's
curves, the table of runs, repeats over seeds, and CSV export.

The panel (:mod:`gptlib.lab.panel`) subscribes to it; tests and scripts drive it directly::

    engine = RunEngine(FinetuneConfig.preset("fast", weights="random", figures=None))
    engine.start(engine.base, seeds=3, wait=True)     # three runs, seeds 123, 124, 125
    engine.runs                                        # one row per run
    engine.summary()                                   # per setting: mean, spread, 95% interval

Every run goes through :func:`gptlib.finetune.run_finetune` with ``save=False``, so it shares
the process's base model and store of frozen activations with every other run.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gptlib import finetune, speed
from gptlib.finetune import FinetuneConfig, FinetuneResult
from gptlib.lab.bonus import book_bonus_results
from gptlib.lab.controls import padding_choice, training_size
from gptlib.lab.messages import failure_message
from gptlib.models import any_config
from gptlib.settings import table_settings
from gptlib.support.files import atomic_write_bytes
from gptlib.support.noise import compare_with_book, summarize
from gptlib.support.run_slots import take_slot
from gptlib.train import EvalEvent

RESULT_COLUMNS = ("train_acc", "val_acc", "test_acc", "best_val_epoch", "train_val_gap", "seconds",
                  "stopped_early", "examples_seen")
RUN_COLUMNS = ("run", "group", *table_settings(), *RESULT_COLUMNS)
ACCURACY_COLUMNS = ("train_acc", "val_acc", "test_acc", "train_val_gap")
LORA_SETTINGS = tuple(name for name in table_settings() if name.startswith("lora_"))


def release_freed_memory() -> None:
    """Hand memory that freed tensors left in the heap back to the system, between runs.

    A lab kernel runs many experiments; without this, glibc keeps the freed pages of each run
    (hundreds of MB of tensors, freed in a different order than they were made) and the
    kernel's resident size creeps up run after run. ``malloc_trim`` is glibc's own call for
    this (Dask's workers use it the same way); elsewhere only the garbage collector runs."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def empty_curves() -> dict[str, list[float]]:
    return {"eval_examples": [], "train_losses": [], "val_losses": [],
            "epoch_examples": [], "train_accs": [], "val_accs": []}


@dataclass
class LabEvent:
    """What subscribers hear: ``kind`` is "started", "queued" (waiting for one of the machine's
    run slots, see :mod:`gptlib.support.run_slots`), "cancelled" (stopped before its turn),
    "step", "eval", "epoch", "finished", "failed" or "idle" (the last run of a start() ended);
    ``run`` is the run's number."""

    kind: str
    run: int
    config: FinetuneConfig | None = None
    train: EvalEvent | None = None  # for "step", "eval", "epoch"
    result: FinetuneResult | None = None  # for "finished"
    error: BaseException | None = None  # for "failed"
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class RunEngine:
    """Runs one :class:`FinetuneConfig` at a time in a background thread and keeps every
    finished (or stopped) run as a row of :attr:`runs`, its curves in :attr:`histories`."""

    def __init__(self, base: FinetuneConfig | None = None):
        self.base = base or FinetuneConfig(output="runs/lab", figures=None)
        self.runs = pd.DataFrame(columns=list(RUN_COLUMNS))
        self.histories: dict[int, dict[str, list[float]]] = {}
        self.curves = empty_curves()  # the current (or last) run's, growing live
        self.result: FinetuneResult | None = None
        self.model = None  # the latest finished run's classifier
        self.last_error: BaseException | None = None
        self.steps_done = 0
        self.current: FinetuneConfig | None = None
        self._subscribers: list[Callable[[LabEvent], Any]] = []
        self._stop = threading.Event()
        self._stopped_training = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._run_counter = 0
        self._groups: dict[tuple, int] = {}
        self.test_sizes: dict[int, int | None] = {}  # test messages each run was measured on

    # -- subscribing -------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[LabEvent], Any]) -> None:
        """Call ``fn(event)`` for every :class:`LabEvent` (from the run's thread)."""
        self._subscribers.append(fn)

    def _emit(self, event: LabEvent) -> None:
        """Tell every subscriber; one that fails is reported on stderr and never ends the run."""
        for fn in list(self._subscribers):
            try:
                fn(event)
            except Exception:  # a display's bug must not take the runs (or the Run button) down
                traceback.print_exc()

    # -- running -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def last_run(self) -> int:
        """The number of the latest finished run (0 before any)."""
        return self._run_counter

    @property
    def next_run(self) -> int:
        return self._run_counter + 1

    def start(self, cfg: FinetuneConfig, seeds: int = 1, wait: bool = False) -> bool:
        """Run ``cfg`` (``seeds`` times: seed, seed+1, ...) in the background. False when a run
        is already going; the caller checks the settings first (``cfg.check()``)."""
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1; got {seeds}.")
        with self._lock:
            if self.running:
                return False
            self._stop.clear()
            configs = [dataclasses.replace(cfg, seed=cfg.seed + i) for i in range(seeds)]
            self._thread = threading.Thread(target=self._work, args=(configs,), name="gptlib-lab-run", daemon=True)
            self._thread.start()
        if wait:
            self.wait()
        return True

    def warm_up(self, cfg: FinetuneConfig | None = None) -> threading.Thread:
        """Load, in a background thread, what the first run of ``cfg`` (the base settings by
        default) would otherwise wait for: see :func:`gptlib.speed.warm_process`. A run started
        meanwhile waits only for what it shares. Best effort: a failure here is the run's to
        report, in the lab's words, when it comes to it."""
        cfg = cfg or self.base

        def work() -> None:
            try:
                speed.warm_process(cfg)
            except Exception:  # noqa: BLE001  (the run meets the same problem and explains it)
                pass

        thread = threading.Thread(target=work, name="gptlib-lab-warm-up", daemon=True)
        thread.start()
        return thread

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the runs to end; True when none is going any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def stop(self) -> bool:
        """Stop after the current step (and skip the remaining seeds); True when a run was going."""
        if not self.running:
            return False
        self._stop.set()
        return True

    def _callback(self, event: EvalEvent) -> bool:
        if event.kind == "step":
            self.steps_done = event.global_step + 1
        elif event.kind == "eval":
            self.curves["eval_examples"].append(event.examples_seen)
            self.curves["train_losses"].append(event.train_loss)
            self.curves["val_losses"].append(event.val_loss)
        elif event.kind == "epoch":
            self.curves["epoch_examples"].append(event.examples_seen)
            self.curves["train_accs"].append(event.train_acc)
            self.curves["val_accs"].append(event.val_acc)
        self._emit(LabEvent(event.kind, self.next_run, self.current, train=event))
        if self._stop.is_set():
            self._stopped_training = True  # training ends here; a later Stop changes nothing
            return True
        return False

    def _work(self, configs: list[FinetuneConfig]) -> None:
        try:
            for i, cfg in enumerate(configs):
                if i > 0 and self._stop.is_set():
                    break
                self._one(cfg, extra={"seed_index": i + 1, "seeds": len(configs)})
        finally:
            self._emit(LabEvent("idle", self._run_counter))

    def _one(self, cfg: FinetuneConfig, extra: dict[str, Any]) -> None:
        self.current, self.last_error = cfg, None
        # One run's model in memory at a time: the previous one (and, with other random
        # weights, the base it shares its frozen part with) is let go before this one is built.
        self.model = None
        if self.result is not None:
            self.result = dataclasses.replace(self.result, model=None)
        release_freed_memory()
        self.curves, self.steps_done, self._stopped_training = empty_curves(), 0, False
        self._emit(LabEvent("started", self.next_run, cfg, extra=extra))
        slot = take_slot(self._stop, on_wait=lambda k: self._emit(LabEvent("queued", self.next_run, cfg,
                                                                          extra={**extra, "slots": k})))
        if slot is None:  # stopped while waiting for its turn: no run to record
            self._emit(LabEvent("cancelled", self.next_run, cfg, extra=extra))
            return
        start = time.perf_counter()
        try:
            with slot:
                result = finetune.run_finetune(cfg, callback=self._callback, progress=False, verbose=False,
                                               save=False)
        except BaseException as err:  # reported to the subscribers; the kernel and the lab go on
            self.last_error = err  # the whole error; the message is one line in the lab's words
            self._stop.set()  # no further seeds after a failure
            self._emit(LabEvent("failed", self.next_run, cfg, error=err, extra=extra,
                                message=failure_message(err, cfg, time.perf_counter() - start)))
            return
        run_id = self._record(cfg, result, self._stopped_training)
        self._emit(LabEvent("finished", run_id, cfg, result=result, extra={**extra, "stopped": self._stopped_training}))

    # -- the table ---------------------------------------------------------------------------
    def _record(self, cfg: FinetuneConfig, result: FinetuneResult, stopped: bool) -> int:
        self._run_counter += 1
        run_id = self._run_counter
        used = FinetuneConfig.from_dict(result.config) if result.config else cfg.effective()
        context = any_config(used.model_size)["context_length"]
        settings = {name: getattr(used, name) for name in table_settings()}
        settings["padding"] = padding_choice(used.padding, used.max_length, context)
        settings["max_length"] = result.max_length if used.padding == "max_length" else None
        if used.trainable != "lora":  # LoRA's settings mean nothing without it: blank, one group
            settings.update(dict.fromkeys(LORA_SETTINGS))
        settings["train_limit"] = training_size(used) if used.train_limit else "all"
        group_key = tuple((k, str(v)) for k, v in settings.items() if k != "seed")
        group = self._groups.setdefault(group_key, len(self._groups) + 1)
        val_accs = list(result.val_accs)
        best = max(range(len(val_accs)), key=val_accs.__getitem__) + 1 if val_accs else None
        row = {"run": run_id, "group": group, **settings,
               "train_acc": result.train_accuracy, "val_acc": result.val_accuracy, "test_acc": result.test_accuracy,
               "best_val_epoch": best, "train_val_gap": result.train_accuracy - result.val_accuracy,
               "seconds": round(result.seconds, 2), "stopped_early": "yes" if stopped else "no",
               "examples_seen": result.examples_seen}
        new = pd.DataFrame([row], columns=list(RUN_COLUMNS))
        self.runs = new if self.runs.empty else pd.concat([self.runs, new], ignore_index=True)
        curves = {k: list(v) for k, v in self.curves.items()}
        if not curves["val_losses"] and result.val_losses:  # a run that reported no events
            curves.update(train_losses=list(result.train_losses), val_losses=list(result.val_losses),
                          eval_examples=list(range(len(result.val_losses))))
        if not curves["val_accs"] and result.val_accs:
            curves.update(train_accs=list(result.train_accs), val_accs=list(result.val_accs),
                          epoch_examples=list(range(1, len(result.val_accs) + 1)))
        self.histories[run_id] = curves
        self.result, self.model = result, result.model
        self.test_sizes[run_id] = int(result.test_metrics.get("n", 0)) or None
        return run_id

    def varying_settings(self) -> list[str]:
        """The setting columns whose values differ between the runs (the ones worth showing)."""
        if len(self.runs) < 2:
            return []
        return [c for c in table_settings() if self.runs[c].map(str).nunique() > 1]

    def summary(self) -> pd.DataFrame:
        """One row per setting (runs that differ only in their seed form one group): the number
        of distinct seeds, the test accuracy's mean and spread over them, and its 95% interval
        (see :mod:`gptlib.support.noise`). Stopped runs are left out: they did not finish training."""
        rows = []
        for group, frame in self.runs[self.runs["stopped_early"] == "no"].groupby("group", sort=True):
            n = self._test_size(frame)
            s = summarize(_per_seed(frame), n)
            rows.append({"group": int(group), "runs": ", ".join(str(r) for r in frame["run"]),
                         "seeds": s["seeds"], "test_mean": s["mean"], "test_std": s["std"],
                         "test_low": s["low"], "test_high": s["high"],
                         "val_mean": frame["val_acc"].astype(float).mean(),
                         "seconds_mean": frame["seconds"].astype(float).mean()})
        return pd.DataFrame(rows, columns=["group", "runs", "seeds", "test_mean", "test_std", "test_low",
                                           "test_high", "val_mean", "seconds_mean"])

    def test_messages(self) -> int:
        """Test messages the runs were measured on (300, the book's, before any run)."""
        return self._test_size(self.runs)

    def _test_size(self, frame: pd.DataFrame) -> int:
        sizes = [self.test_sizes.get(int(r)) for r in frame["run"]]
        return next((s for s in sizes if s), 300)

    def compare_with_book(self, group: int, key: str) -> str:
        """Whether a group's mean test accuracy differs from a row of the book's bonus table by
        more than noise; one sentence."""
        frame = self.runs[(self.runs["group"] == group) & (self.runs["stopped_early"] == "no")]
        if frame.empty:
            raise ValueError(f"No finished (not stopped) runs in group {group}; groups are "
                             f"{sorted(set(self.runs['group']))}.")
        name, test = _book_test(key)
        out = compare_with_book(_per_seed(frame), self._test_size(frame), test)
        return f"group {group} ({frame['seed'].nunique()} seed(s)) vs the book's '{name}': {out['verdict']}"

    def export_csv(self, path: str | Path) -> Path:
        """Write the runs table to a CSV file (atomically: a complete file or none); return its path."""
        return atomic_write_bytes(Path(path), self.runs.to_csv(index=False).encode())


def _book_test(key: str) -> tuple[str, float]:
    """(description, test accuracy 0..1) of a row of the book's bonus table, or of another of the
    book's experiments with a test accuracy (appendix E's LoRA runs)."""
    book = book_bonus_results()
    if key in book.index:
        return str(book.loc[key, "setting"]), float(book.loc[key, "test_acc"])
    try:
        from gptlib.study.experiments import experiment

        exp = experiment(key)
    except (ImportError, KeyError):
        exp = None
    if exp is None or exp.test is None:
        raise ValueError(f"No bonus experiment {key!r}; choose one of {list(book.index)}"
                         " (or appendix E's 'appendix_e', 'appendix_e_print').")
    return exp.description, exp.test / 100


def _per_seed(frame: pd.DataFrame) -> list[float]:
    """Test accuracies, one per seed: a run repeated with the same seed is the same run (the latest kept)."""
    return frame.drop_duplicates("seed", keep="last")["test_acc"].astype(float).tolist()
