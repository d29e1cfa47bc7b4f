"""The student's side of grading: answer the grader's questions, decide nothing.

This module runs in the student's kernel, after the student's own code: anything in it can
be patched, so it holds no expected value and judges nothing. The grader (another process,
:mod:`gptlib.assignments.channel`) writes a question to a file and asks the kernel to run
:func:`serve` on it; the kernel writes its answer next to it, as plain data that
``torch.load(weights_only=True)`` reads back: numbers, strings, lists, dicts, tensors, and
models made of gptlib's and torch's own layer classes.

Two kinds of question:

* ``report``: what a notebook name holds (a run of ``run_experiment``: its settings, class
  names, numbers and weights; a dict of runs; a function: only that it is one);
* ``call``: call the student's function on the inputs the grader made, and return its
  result and the state of the models it was given (a function may change them in place).

A student who patches this module changes their own answers, never the grader's verdict.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from gptlib.assignments.fingerprints import digest, fingerprint

BIG = 20_000_000  # parameters: above this, frozen tensors travel as digests, not values
_FUNCTION = type(lambda: None)  # not types.FunctionType, which a cell may have rebound


def _namespace() -> dict[str, Any]:
    try:
        return get_ipython().user_ns  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return vars(sys.modules["__main__"])


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as data the grader's safe loader accepts (unknown objects become a note)."""
    if depth > 6:
        return {"_unreadable": "nested too deeply"}
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value).__module__ == "numpy":
        if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
            return torch.from_numpy(value.copy())
        item = value.item() if hasattr(value, "item") else None
        return item if type(item) in (bool, int, float) else {"_unreadable": type(value).__name__}
    if isinstance(value, torch.Tensor):
        if type(value) is not torch.Tensor and not isinstance(value, nn.Parameter):
            return {"_unreadable": f"a tensor subclass {type(value).__name__}"}
        out = value.detach().clone()
        return out.requires_grad_(True) if value.requires_grad and out.is_floating_point() else out
    if isinstance(value, nn.Module):
        return value
    if type(value) in (list, tuple):
        out = [_plain(v, depth + 1) for v in value]
        return out if type(value) is list else tuple(out)
    if type(value) is dict:
        return {k: _plain(v, depth + 1) for k, v in value.items() if type(k) in (str, int, float, bool)}
    return {"_unreadable": type(value).__name__}


def _run_report(run: Any) -> dict[str, Any]:
    """A run as the grader reads it: settings, numbers, class names, weights."""
    model = getattr(run, "model", None)
    out: dict[str, Any] = {"_kind": "run", "type": type(run).__name__}
    for key in ("config", "class_names", "accuracy", "loss", "train_losses", "val_losses", "train_accs",
                "val_accs", "examples_seen", "seconds", "name"):
        try:
            out[key] = _plain(getattr(run, key, None))
        except Exception as err:  # a student's property that raises
            out[key] = {"_unreadable": type(err).__name__}
    if isinstance(model, nn.Module):
        params = dict(model.named_parameters())
        state = model.state_dict()
        big = sum(p.numel() for p in params.values()) > BIG
        out["requires_grad"] = {name: bool(p.requires_grad) for name, p in params.items()}
        out["state"] = {k: v.detach().to("cpu").clone() for k, v in state.items()
                        if not big or k not in params or params[k].requires_grad}
        out["digests"] = {k: digest(v) for k, v in state.items() if k not in out["state"]}
        out["model_type"] = type(model).__name__
    loaders = getattr(run, "loaders", None)
    if isinstance(loaders, (tuple, list)) and loaders:
        dataset = getattr(loaders[0], "dataset", None)
        labels = getattr(dataset, "labels", None)
        if labels is not None:
            out["train_labels"] = [int(y) for y in labels]
    return out


def report(value: Any) -> Any:
    """What a notebook name holds, as plain data for the grader."""
    if value is None:
        return None
    if type(value) is _FUNCTION:
        return {"_kind": "function", "name": value.__name__, "module": value.__module__}
    if hasattr(value, "config") and hasattr(value, "model"):
        return _run_report(value)
    if type(value) is dict:
        return {k: report(v) for k, v in value.items() if type(k) is str}
    return _plain(value)


@contextlib.contextmanager
def _watch(fingerprints: set[str], seen: list[str]) -> Iterator[None]:
    """Note every call, while the block runs, of code with one of these fingerprints."""
    known: dict[int, bool] = {}

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        hit = known.get(id(code))
        if hit is None:
            hit = known[id(code)] = fingerprint(code) in fingerprints
        if hit:
            seen.append(code.co_name)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)


def _call(name: str, args: tuple, kwargs: dict, references: list[str], fingerprints: set[str]) -> dict[str, Any]:
    from gptlib.assignments.student import UsedReference, references_disabled

    fn = _namespace().get(name)
    if type(fn) is not _FUNCTION:
        return {"status": "invalid", "type": type(fn).__name__, "module": getattr(fn, "__module__", None)}
    refs = [_resolve(label) for label in references]
    if any(fn is ref for ref in refs) or fingerprint(fn.__code__) in fingerprints:
        return {"status": "reference"}
    seen: list[str] = []
    try:
        with references_disabled(refs, fn), _watch(fingerprints, seen):
            result = fn(*args, **kwargs)
        if seen:
            return {"status": "used_reference"}
    except NotImplementedError:
        return {"status": "not_implemented"}
    except UsedReference:
        return {"status": "used_reference"}
    except BaseException as err:  # noqa: BLE001 (SystemExit, KeyboardInterrupt: the student's too)
        text = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        if isinstance(err, KeyboardInterrupt):
            return {"status": "interrupted"}
        return {"status": "error", "error": type(err).__name__, "message": text,
                "where": traceback.format_exception_only(type(err), err)[-1][:200]}
    if isinstance(result, torch.Tensor) and result.requires_grad and result.numel() == 1:
        try:  # the gradient the result carries back to the grader's tensors (a loss, say)
            result.backward()
        except Exception:
            pass
    grads = [a.grad.detach().clone() if isinstance(a, torch.Tensor) and a.grad is not None else None for a in args]
    return {"status": "ok", "value": result, "args": [a if isinstance(a, nn.Module) else None for a in args],
            "grads": grads, "module": fn.__module__}


def _resolve(label: str) -> Any:
    module, _, attr = label.rpartition(".")
    obj: Any = sys.modules.get(module)
    if obj is None:
        parts = label.split(".")
        for i in range(len(parts) - 1, 0, -1):
            obj = sys.modules.get(".".join(parts[:i]))
            if obj is not None:
                for part in parts[i:]:
                    obj = getattr(obj, part, None)
                return obj
        return None
    return getattr(obj, attr, None)


def serve(path: str) -> None:
    """Answer the question in ``path`` (written by the grader) into ``path + '.answer'``."""
    question = torch.load(path, weights_only=False)
    try:
        if question["kind"] == "report":
            namespace = _namespace()
            answer: dict[str, Any] = {"status": "ok", "values": {n: report(namespace.get(n)) for n in question["names"]}}
        else:
            torch.set_rng_state(question["rng"])  # as the check left it (its seed, for dropout)
            answer = _call(question["name"], question["args"], question["kwargs"], question["references"],
                           set(question.get("fingerprints", ())))
            if answer["status"] == "ok":
                answer["value"] = _plain(answer["value"])
        torch.save(answer, path + ".answer")
    except Exception as err:  # an answer the safe loader cannot take, or an unpicklable result
        torch.save({"status": "unreadable", "error": type(err).__name__, "message": str(err)[:200]}, path + ".answer")


__all__ = ["BIG", "report", "serve"]
