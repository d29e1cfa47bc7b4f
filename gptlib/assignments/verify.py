"""Checking a student's run without taking its word for anything.

A :class:`~gptlib.assignments.runner.Run` is an ordinary object: its numbers, its settings
and even its model could be copied from another run or typed in. :func:`verified_run`
therefore

1. compares the run's settings with those the task and the grading profile ask for (a
   specific message for each difference);
2. rebuilds the untrained classifier those settings give, and fails when the run's model
   still has its weights (training did not happen) or when its frozen layers are not the
   grading model's (another profile);
3. trains the run again itself (``$GPTLIB_GRADING_REPLAY=full``, the default) and requires
   the student's model to be the one that training gives; with ``measure`` it evaluates
   the student's model on data it builds itself and requires the run's numbers to match.

The checks then judge only the run returned here, never the student's object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gptlib.assignments.channel import ReportedRun
from gptlib.assignments.feedback import fail, short
from gptlib.assignments.profiles import replay_mode
from gptlib.assignments.runner import (
    SPLITS,
    Run,
    evaluate_loader,
    experiment_config,
    own_data_settings,
    run_experiment,
)
from gptlib.notebook import Profile

# Settings compared between a student's run and the task's; the rest say where files go.
NOT_COMPARED = {"output", "figures", "device", "data", "csv", "train_csv", "val_csv", "test_csv", "speed"}
NAMES = {"max_length": "padded length", "token": "token read", "trainable": "part that trains",
         "padding": "padding", "epochs": "number of epochs", "lr": "learning rate",
         "weight_decay": "weight decay", "drop_rate": "dropout rate", "train_limit": "training-set limit",
         "batch_size": "batch size", "seed": "seed", "model_size": "model", "weights": "weights",
         "eval_freq": "evaluation frequency", "eval_iter": "evaluation batches"}


def run_like(run: Any, label: str) -> Any:
    """``run`` if it looks like what run_experiment returns; else a message naming ``label``."""
    if run is None:
        fail(f"`{label}` is still None: set it to what run_experiment(...) returns.")
    if isinstance(run, ReportedRun):
        if not isinstance(run.config, dict) or not run.has_model or not isinstance(run.class_names, list):
            fail(f"`{label}` should be what run_experiment(...) returns; the notebook reported a "
                 f"{run.data.get('type')} without a model's settings and weights.")
        return run
    config, model = getattr(run, "config", None), getattr(run, "model", None)
    if not isinstance(config, dict) or not isinstance(model, nn.Module) or not hasattr(run, "class_names"):
        fail(f"`{label}` should be what run_experiment(...) returns; got {short(run)} "
             f"({type(run).__name__}).")
    return run


def _compare_settings(run: Any, label: str, expected: dict[str, Any], task: set[str],
                      hints: Mapping[str, str]) -> None:
    speed = run.config.get("speed", "exact")
    if speed not in ("book", "exact"):
        fail(f"`{label}` was made with speed={speed!r}, which changes the experiment (the token read and "
             "the padding); leave speed at its default for the assignments' runs.")
    for key, want in expected.items():
        if key in NOT_COMPARED:
            continue
        got = run.config.get(key)
        if got == want or (isinstance(got, float) and isinstance(want, float) and abs(got - want) < 1e-12):
            continue
        nice = NAMES.get(key, key)
        if key in hints:
            fail(f"`{label}` was made with the {nice} {got!r}: {hints[key]}")
        if key in task:  # the task's own setting: say that it is wrong, not what it should be
            fail(f"`{label}` was made with the {nice} {got!r}, which is not what this task asks for: "
                 "read the task again.")
        fail(f"`{label}` was made with the {nice} {got!r}, which is not the grading profile's. Use `profile` "
             "from the setup cell and change only what the task asks.")


def _expected_config(profile: Profile, settings: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(experiment_config(profile, **settings, **data).effective())


def _initial_model(config: dict[str, Any], num_classes: int, adjust: Callable | None) -> nn.Module:
    from gptlib.finetune import build_model
    from gptlib.settings import FinetuneConfig

    cfg = FinetuneConfig.from_dict(config)
    model = build_model(cfg, torch.device("cpu"), progress=False, num_classes=num_classes)
    if adjust is not None:
        changed = adjust(model)
        model = model if changed is None else changed
    return model


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu() for k, v in model.state_dict().items()}


def _shapes_differ(label: str) -> None:
    fail(f"`{label}`'s model does not have the layers and shapes the task's classifier has (another "
         "model size, or another number of classes): make it with run_experiment and `profile`.")


def _frozen_differ(label: str) -> None:
    fail(f"in `{label}`'s model, layers that its settings keep frozen hold other weights than the "
         "grading profile's model: it was trained with other settings or another profile, or changed "
         "afterwards. Restart the kernel and run all cells.")


def _rebuilt(run: ReportedRun, label: str, initial: nn.Module) -> nn.Module:
    """The reported model, on the grader's side: its untrained classifier with the reported
    weights (a frozen tensor reported as a digest must be the untrained one)."""
    import copy

    from gptlib.assignments.fingerprints import digest

    model = copy.deepcopy(initial)
    start = model.state_dict()
    state, digests = run.state, run.digests
    if set(state) | set(digests) != set(start) or any(
            not isinstance(state[k], torch.Tensor) or state[k].shape != start[k].shape for k in state):
        _shapes_differ(label)
    if any(digest(start[k]) != digests[k] for k in digests):
        _frozen_differ(label)
    model.load_state_dict({k: state.get(k, start[k]) for k in start})
    flags = run.requires_grad
    for name, p in model.named_parameters():
        p.requires_grad_(bool(flags.get(name, p.requires_grad)))
    return model


def _check_against_initial(model: nn.Module, label: str, initial: nn.Module) -> None:
    mine, start = _state(model), _state(initial)
    if mine.keys() != start.keys() or any(mine[k].shape != start[k].shape for k in start):
        _shapes_differ(label)
    trains = {n for n, p in initial.named_parameters() if p.requires_grad}
    frozen = [k for k in start if k not in trains]
    if any(not torch.equal(mine[k], start[k]) for k in frozen):
        _frozen_differ(label)
    if all(torch.equal(mine[k], start[k]) for k in trains):
        fail(f"`{label}`'s model still has the weights it started with, so training did not happen "
             "(0 epochs? no training messages?). Train it with run_experiment as the task says.")


def _same_model(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-5) for k in sa)


def verified_run(run: Any, label: str, profile: Profile, settings: dict[str, Any] | None = None, *,
                 adjust: Callable | None = None, data: Mapping[str, Any] | None = None,
                 hints: Mapping[str, str] | None = None) -> Run:
    """The run the task asks for, made by the checker, once ``run`` proved to be it.

    ``settings``: what the task changes (FinetuneConfig fields); ``data``: the task's own
    tables (``csv=`` or ``train=``/``validation=``/``test=``, made by the check itself);
    ``adjust``: the task's change to the classifier; ``hints``: per setting, what to say
    when the run's value differs (without giving the value)."""
    run = run_like(run, label)
    settings = dict(settings or {})
    files = own_data_settings(profile, **(data or {}))
    expected = _expected_config(profile, settings, files)
    _compare_settings(run, label, expected, set(settings), hints or {})
    initial = _initial_model(expected, len(run.class_names), adjust)
    model = _rebuilt(run, label, initial) if isinstance(run, ReportedRun) else run.model
    _check_against_initial(model, label, initial)
    if replay_mode() == "full":
        trusted = run_experiment(profile, name=label, adjust=adjust, quiet=True, **settings, **(data or {}))
        if list(run.class_names) != list(trusted.class_names) or not _same_model(model, trusted.model):
            fail(f"`{label}`'s model is not the one that training with its settings gives: it was changed "
                 "after training, trained on other data, or not made by run_experiment in this "
                 "notebook. Run the cell that makes it again, as the task says.")
        return trusted
    return _measured(run, model, label, expected)


def _measured(run: Any, model: nn.Module, label: str, expected: dict[str, Any]) -> Run:
    """The student's model, with numbers the checker measured on data it built itself."""
    from gptlib.data import create_data_loaders
    from gptlib.finetune import build_datasets
    from gptlib.model import count_parameters, get_config
    from gptlib.settings import FinetuneConfig
    from gptlib.tokenizer import get_tokenizer

    cfg = FinetuneConfig.from_dict(expected)
    context = get_config(cfg.model_size)["context_length"]
    *datasets, names = build_datasets(cfg, get_tokenizer(), Path(cfg.output) / "data", context, verbose=False)
    loaders = create_data_loaders(*datasets, batch_size=cfg.batch_size, seed=cfg.seed)
    accuracy, loss = {}, {}
    device = next(model.parameters()).device
    for split, loader in zip(SPLITS, loaders):
        accuracy[split], loss[split] = evaluate_loader(loader, model, device, cfg.token)
        claimed = (getattr(run, "accuracy", {}) or {}).get(split), (getattr(run, "loss", {}) or {}).get(split)
        if claimed != (accuracy[split], loss[split]) and not all(
                isinstance(c, float) and abs(c - m) < 1e-6 for c, m in zip(claimed, (accuracy[split], loss[split]))):
            fail(f"the {split} numbers in `{label}` are not those of its model on the task's data: the run "
                 "was changed after training. Run the cell that makes it again.")
    return Run(name=label, profile="measured", config=expected, train_losses=[], val_losses=[], train_accs=[],
               val_accs=[], examples_seen=0, accuracy=accuracy, loss=loss,
               trainable_params=count_parameters(model, trainable_only=True),
               total_params=count_parameters(model), class_names=list(names), seconds=0.0,
               model=model, loaders=tuple(loaders))


__all__ = ["NAMES", "run_like", "verified_run"]
