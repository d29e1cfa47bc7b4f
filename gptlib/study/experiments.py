"""Every experiment of the book's chapter 6, in one registry, with the settings that repeat it.

The rows: the chapter's own run, exercises 6.1-6.3, the 19 rows of the bonus table
(``ch06/02_bonus_additional-experiments``) and appendix E's two LoRA results. Each row has
the book's train / validation / test accuracy (percent; None where the book gives none), the
minutes it took where the book says, and the :class:`~gptlib.settings.FinetuneConfig` settings
that repeat it (only those that differ from the defaults, which are the book's)::

    from gptlib.study.experiments import experiment
    cfg = experiment("last2").config(epochs=1)      # a FinetuneConfig, overrides applied

On the command line: ``python -m gptlib experiments list | run KEY | table``.

One thing to keep in mind when comparing: the bonus script shuffles the data once more
before it splits it, so its baseline reaches 95.00% test where the chapter's run reaches
95.67%. gptlib splits the data the chapter's way, so the bonus and exercise numbers come
from a slightly different split than yours (the exercises' numbers equal bonus rows 13, 5
and 2 and belong to that split too).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gptlib.settings import FinetuneConfig, table_settings
from gptlib.tokenizer import END_OF_TEXT_ID

SOURCES = ("chapter", "exercise", "bonus", "appendix E", "open models")
XL, LORA = "gpt2-xl (1558M)", {"trainable": "lora", "lora_rank": 16, "lora_alpha": 16.0}
_BONUS_LORA = {**LORA, "lora_scaling": "alpha", "lora_head": "full"}
_NOPAD = {"padding": "none", "batch_size": 1}
A100 = "an A100"

# (key, source, bonus row, description, settings, (train, val, test) %, minutes, hardware, same_as, note)
_TABLE: tuple[tuple, ...] = (
    ("chapter", "chapter", None, "the chapter's run: gpt2-small, last token, last block, pad to longest",
     {}, (97.21, 97.32, 95.67), 5.0, "an M3 MacBook Air CPU; under half a minute on a V100/A100", None, ""),
    ("ex6.1", "exercise", None, "exercise 6.1: pad every message to the context length (1024)",
     {"max_length": 1024}, (None, None, 78.33), None, "", "context", ""),
    ("ex6.2", "exercise", None, "exercise 6.2: train all layers", {"trainable": "all"},
     (None, None, 96.67), None, "", "all", ""),
    ("ex6.3", "exercise", None, "exercise 6.3: read the first token", {"token": "first"},
     (None, None, 75.00), None, "", "first", ""),
    ("baseline", "bonus", 1, "gpt2-small, last token, last block, pad to longest (the script's default)",
     {}, (96.63, 99.33, 95.00), 0.28, A100, None, ""),
    ("first", "bonus", 2, "read the first token", {"token": "first"}, (78.46, 80.54, 75.00), 0.28, A100,
     None, ""),
    ("head", "bonus", 3, "train the output head only", {"trainable": "head"}, (78.65, 79.87, 72.00), 0.25,
     A100, None, "the script's --trainable_layers last_layer"),
    ("last2", "bonus", 4, "train the last two blocks", {"trainable": "last_2_blocks"},
     (98.85, 98.66, 98.33), 0.33, A100, None, ""),
    ("all", "bonus", 5, "train all layers", {"trainable": "all"}, (99.62, 96.64, 96.67), 0.69, A100, None, ""),
    ("medium", "bonus", 6, "gpt2-medium (355M)", {"model_size": "gpt2-medium (355M)"},
     (87.50, 91.28, 84.67), 0.75, A100, None, ""),
    ("large", "bonus", 7, "gpt2-large (774M)", {"model_size": "gpt2-large (774M)"},
     (99.52, 98.66, 96.67), 1.50, A100, None, ""),
    ("xl", "bonus", 8, "gpt2-xl (1558M)", {"model_size": XL}, (99.81, 99.81, 98.33), 2.83, A100, None, ""),
    ("xl_all", "bonus", 9, "gpt2-xl (1558M), all layers trained", {"model_size": XL, "trainable": "all"},
     (100.00, 98.66, 98.67), 8.12, A100, None, ""),
    ("random", "bonus", 10, "random weights, all layers trained", {"weights": "random", "trainable": "all"},
     (100.00, 96.64, 93.67), 0.69, A100, None, ""),
    ("lora", "bonus", 11, "LoRA, rank 16, alpha 16", dict(_BONUS_LORA), (100.00, 97.32, 96.67), 0.75, A100,
     None, "the bonus script scales by alpha and trains the new head in full as well as its adapter"),
    ("xl_lora", "bonus", 12, "gpt2-xl (1558M), LoRA, rank 16, alpha 8",
     {"model_size": XL, **_BONUS_LORA, "lora_alpha": 8.0}, (100.00, 98.66, 98.33), 5.79, A100, None, ""),
    ("context", "bonus", 13, "pad every message to the context length (1024)", {"max_length": 1024},
     (83.08, 87.92, 78.33), 2.46, A100, None, ""),
    ("nopad", "bonus", 14, "no padding (batch size 1)", dict(_NOPAD), (100.00, 98.66, 98.00), 1.75, A100,
     None, "one message per batch, each at its own length (the script's --no_padding)"),
    ("nopad_accum", "bonus", 15, "no padding (batch size 1), 8 accumulation steps",
     {**_NOPAD, "accumulation_steps": 8}, (99.33, 98.66, 98.33), 1.70, A100, None,
     "the same updates as batches of 8"),
    ("last_real", "bonus", 16, "read the last real (non-padding) token", {"token": "last_real"},
     (99.42, 98.66, 98.33), 0.30, A100, None, "the script's --trainable_token_pos flexible"),
    ("no_mask", "bonus", 17, "no causal attention mask", {"causal_mask": False}, (99.23, 98.66, 95.33), 0.29,
     A100, None, "every token sees every token (--disable_causal_mask)"),
    ("ignore_index", "bonus", 18, "the loss ignores target 50256", {"ignore_index": END_OF_TEXT_ID},
     (96.63, 99.33, 95.00), 0.28, A100, None,
     "the labels are 0 and 1, never 50256, so this is the baseline's run (the same numbers)"),
    ("mean_pooled", "bonus", 19, "average the logits over every position, padding included",
     {"token": "mean_padded"}, (97.79, 99.33, 96.33), 0.32, A100, None, "the script's --average_embeddings"),
    ("appendix_e", "appendix E", None, "appendix E today: LoRA rank 16, alpha 16, scaled by alpha/rank, lr 8e-4",
     {**LORA, "lora_scaling": "alpha/rank", "lora_head": "adapter", "lr": 8e-4, "weight_decay": 0.1,
      "epochs": 5}, (99.81, 97.99, 96.67), 12.10, "an M1 CPU; 2.16 min on an M4 Pro with MPS", None,
     "the notebook's current version; the head gets an adapter only"),
    ("appendix_e_print", "appendix E", None, "appendix E as printed: LoRA rank 16, alpha 16, scaled by alpha, "
     "lr 5e-5", {**LORA, "lora_scaling": "alpha", "lora_head": "adapter", "lr": 5e-5},
     (100.00, 96.64, 97.33), None, "", None, "the printed edition and llms-from-scratch 1.0.19"),
    # Not the book's: its recipe on two open models (gptlib.models, notebook 09); no figures to compare with.
    ("qwen3", "open models", None, "the chapter's recipe on Qwen3-0.6B, reading the last real token",
     {"model_size": "qwen3-0.6b", "token": "last_real"}, (None, None, None), None, "", None,
     "not in the book; Qwen3 pads with a real token of its vocabulary, so the last real token is read"),
    ("llama3", "open models", None, "the chapter's recipe on Llama 3.2 1B, reading the last real token",
     {"model_size": "llama3.2-1b", "token": "last_real"}, (None, None, None), None, "", None,
     "not in the book; Llama 3.2 pads with its end-of-text token; its weights need the licence accepted"),
)


class UnknownExperimentError(KeyError, ValueError):
    """No experiment with that key (a KeyError and a ValueError: either ``except`` catches it)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Experiment:
    """One of the book's experiments: its numbers (percent) and the settings that repeat it."""

    key: str
    source: str  # "chapter", "exercise", "bonus", "appendix E" or "open models" (not the book's)
    description: str
    settings: Mapping[str, Any] = field(hash=False)  # FinetuneConfig field -> value (read-only)
    train: float | None = None  # the book's accuracies, percent; None: not given
    val: float | None = None
    test: float | None = None
    minutes: float | None = None
    number: int | None = None  # the row of the bonus table, 1..19
    hardware: str = ""
    same_as: str | None = None  # the bonus row an exercise equals
    note: str = ""

    def config(self, **overrides: Any) -> FinetuneConfig:
        """The FinetuneConfig that repeats the experiment, with ``overrides`` (FinetuneConfig
        field names) on top; not yet checked (``run_finetune`` checks it). ValueError names an
        unknown setting."""
        return FinetuneConfig.from_dict({**self.settings, **overrides})

    def flags(self) -> str:
        """The settings as ``finetune`` flags, e.g. ``--trainable last_2_blocks``."""
        return settings_flags(self.settings)

    @property
    def label(self) -> str:
        """Where in the book: "bonus #4", "exercise 6.1", "appendix E", "chapter"."""
        if self.source == "bonus":
            return f"bonus #{self.number}"
        if self.source == "exercise":
            return "exercise " + self.key[2:]
        return self.source

    @property
    def other_split(self) -> bool:
        """True when the book's numbers come from the bonus script's split, not the chapter's."""
        return self.source in ("bonus", "exercise")

    def book(self) -> dict[str, float | None]:
        """The book's accuracies as fractions (0..1): {"train": .., "val": .., "test": ..}."""
        return {name: None if v is None else v / 100
                for name, v in (("train", self.train), ("val", self.val), ("test", self.test))}


SPLIT_NOTE = ("the book's numbers come from the bonus script's own split (its baseline: 95.00% test; "
              "the chapter's run, whose split gptlib uses: 95.67%)")


def _build() -> tuple[Experiment, ...]:
    rows = []
    for key, source, number, description, settings, (train, val, test), minutes, hardware, same, note in _TABLE:
        rows.append(Experiment(key=key, source=source, description=description,
                               settings=MappingProxyType(dict(settings)), train=train, val=val, test=test,
                               minutes=minutes, number=number, hardware=hardware, same_as=same, note=note))
    return tuple(rows)


_EXPERIMENTS = _build()
_BY_KEY = {e.key: e for e in _EXPERIMENTS}


def experiments(source: str | None = None) -> list[Experiment]:
    """Every experiment (chapter, exercises, bonus rows 1..19, appendix E, and the recipe on the
    open models), or one source's."""
    if source is not None and source not in SOURCES:
        raise ValueError(f"No source {source!r}; choose one of {SOURCES}.")
    return [e for e in _EXPERIMENTS if source is None or e.source == source]


def experiment(key: str) -> Experiment:
    """The experiment with this key; :class:`UnknownExperimentError` lists the valid keys."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise UnknownExperimentError(f"No experiment {key!r} in the book's list; choose one of: "
                                     f"{', '.join(_BY_KEY)} (see `python -m gptlib experiments list`).") from None


def format_value(value: Any) -> str:
    """A setting's value as the command line spells it (1e-4 -> "0.0001", False -> "false")."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_flags(settings: Mapping[str, Any]) -> str:
    """Settings as ``finetune`` flags, quoted for a shell where needed."""
    import shlex

    return " ".join(f"--{name.replace('_', '-')} {shlex.quote(format_value(v))}" for name, v in settings.items())


# ----------------------------------------------------------------- runs next to the book


def read_metrics(path: Path) -> dict[str, Any]:
    """The final numbers of one run's ``metrics.json``: {"train", "val", "test", "n", "config"}.
    ValueError, in a sentence, for a file that is not a complete metrics.json of gptlib."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"is not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("holds no JSON object")
    out: dict[str, Any] = {}
    for name in ("train", "val", "test"):
        value = data.get(f"{name}_accuracy")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"has no {name}_accuracy between 0 and 1 (got {value!r})")
        out[name] = float(value)
    metrics = data.get("test_metrics")
    n = metrics.get("n") if isinstance(metrics, dict) else None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"has no test_metrics.n, the number of test messages (got {n!r})")
    out["n"] = n
    out["config"] = data["config"] if isinstance(data.get("config"), dict) else {}
    return out


def read_runs(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs in one experiment's folder: ``metrics.json``, or ``seed-*/metrics.json`` for a
    run with several seeds. Returns (runs, problems): a malformed file is skipped, and said why
    in one line."""
    folder = Path(folder)
    seeded = sorted(folder.glob("seed-*/metrics.json"), key=lambda p: (len(p.parent.name), p.parent.name))
    single = [folder / "metrics.json"] if (folder / "metrics.json").is_file() else []
    runs, problems = [], []
    paths = seeded or single
    if seeded and single:  # run once with seeds and once without: the later one counts
        newest_seed = max(p.stat().st_mtime for p in seeded)
        paths = single if single[0].stat().st_mtime > newest_seed else seeded
        problems.append(f"{folder} holds a single run and seed-* runs; showing the newer "
                        f"({'metrics.json' if paths is single else 'seed-*'}).")
    for path in paths:
        try:
            runs.append({**read_metrics(path), "path": str(path)})
        except ValueError as err:
            problems.append(f"skipped {path}: it {err}.")
    return runs, problems


def differing_settings(exp: Experiment, config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a run (its metrics.json "config") that differ from the experiment's,
    among those that describe an experiment (not where files go)."""
    want = asdict(exp.config().effective())
    return {name: config[name] for name in table_settings() if name in config and config[name] != want[name]}


# Settings that change how a run computes or which draw of the noise it is, not what experiment
# it is: a run that differs from a row only in these is still compared with the book's numbers.
SAME_EXPERIMENT = ("speed", "seed", "eval_freq", "eval_iter")


def compare(exp: Experiment, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Our mean train/val/test (fractions) over the runs beside the book's, the differences in
    points, and whether the test difference is within noise (:func:`gptlib.support.noise.compare_with_book`:
    the binomial noise of our test messages and the book's 300, plus the seeds' spread).

    Only like is compared with like: where a run changed a setting that makes it another
    experiment (``unlike``: other weights, epochs, token, ...), there is no verdict."""
    from gptlib.support.noise import binomial_halfwidth, compare_with_book

    book = exp.book()
    ours = {name: statistics.fmean(r[name] for r in runs) for name in ("train", "val", "test")}
    diff = {name: None if book[name] is None else 100 * (ours[name] - book[name]) for name in ours}
    n = runs[0]["n"]
    out: dict[str, Any] = {"ours": ours, "book": book, "diff": diff, "seeds": len(runs), "n": n,
                           "spread": statistics.stdev(r["test"] for r in runs) if len(runs) > 1 else 0.0,
                           "within_noise": None, "band": None, "halfwidth": None,
                           "changed": differing_settings(exp, runs[0]["config"])}
    out["unlike"] = sorted(k for k in out["changed"] if k not in SAME_EXPERIMENT)
    if book["test"] is not None and not out["unlike"]:
        verdict = compare_with_book([r["test"] for r in runs], n, book["test"])
        out.update(within_noise=verdict["within_noise"], band=100 * verdict["band"],
                   halfwidth=100 * binomial_halfwidth(book["test"], n))
    return out
