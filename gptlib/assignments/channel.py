"""The grader's side of the narrow channel to a student's kernel.

The grader never runs a student's code in its own process and never takes the kernel's word
for a verdict. It asks questions (:mod:`gptlib.assignments.answer` answers them in the
kernel) and reads the answers with ``torch.load(weights_only=True)``, which builds only
tensors, plain containers and the layer classes listed in :data:`ALLOWED`: an answer cannot
run code in the grader. What comes back is the student's *claim*; the checks compare it, in
the grader, with what the grader computes itself.

Design taken from PrairieLearn's ``pytest-prairielearn-grader`` (student code in another
process, queried for a variable or called on the grader's arguments, data-only replies, a
timeout per query); the student's process here is the notebook's own kernel, so nbgrader's
flow is kept as it is.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gptlib.assignments.feedback import fail, short

# What an answer may be built of, beyond tensors and plain containers: gptlib's GPT layers and
# the torch layers they use. A model with anything else inside (a class or a hook defined in
# the notebook) cannot be read, and the check says so.
_TORCH_LAYERS = (nn.Linear, nn.Embedding, nn.Dropout, nn.Sequential, nn.ModuleList, nn.ModuleDict,
                 nn.LayerNorm, nn.GELU, nn.Identity, nn.ReLU, nn.Tanh)


def allowed() -> list[Any]:
    import gptlib.model as model

    ours = [model.GPTModel, model.TransformerBlock, model.MultiHeadAttention, model.FeedForward,
            model.LayerNorm, model.GELU, model._add_book_mask, model._drop_book_mask]
    return [*ours, *_TORCH_LAYERS, torch.nn.modules.module._WrappedHook]


MAX_ANSWER_BYTES = 2**31  # an answer larger than this is not read (a run of gpt2-small: about 30 MiB)


class Unreadable(Exception):
    """An answer the safe loader refused (it holds code or classes of the notebook)."""


def safe_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(allowed()):
            return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        found = str(err).split("Unsupported global: GLOBAL ", 1)
        what = found[1].split(" ", 1)[0] if len(found) == 2 else type(err).__name__
        raise Unreadable(what) from None


@dataclass(frozen=True)
class Limits:
    """What one question to the kernel may take (from the teacher's configuration)."""

    seconds: float = 120.0
    memory_mb: float | None = None

    def describe(self) -> str:
        memory = f", {self.memory_mb:,.0f} MiB" if self.memory_mb else ""
        return f"{self.seconds:g} s{memory}"


class NoAnswer(Exception):
    """The kernel gave no answer: a limit was hit, or it stopped. ``str()`` says which."""


# ask(code, limits): run ``code`` silently in the student's kernel and wait for its reply;
# raises NoAnswer with a one-line reason when a limit is hit or the kernel is gone.
Ask = Callable[[str, Limits], None]


class Channel:
    """Questions to one kernel, through files in a private folder and ``ask``."""

    def __init__(self, ask: Ask, limits: Limits = Limits()):
        self.ask = ask
        self.limits = limits
        self.folder = Path(tempfile.mkdtemp(prefix="gptlib-grader-"))
        self.calls: list[tuple[str, tuple[Any, ...]]] = []  # (function name, references): for authorship
        self._count = itertools.count()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _question(self, question: dict[str, Any]) -> Any:
        path = self.folder / f"q{next(self._count)}.pt"
        torch.save(question, path)
        code = f"__import__('gptlib.assignments.answer', fromlist=['serve']).serve({str(path)!r})"
        self.ask(code, self.limits)
        answer = Path(str(path) + ".answer")
        try:
            size = answer.stat().st_size
            if size > MAX_ANSWER_BYTES:
                raise NoAnswer(f"the notebook's answer is {size / 2**20:,.0f} MiB, more than the grader reads "
                               f"({MAX_ANSWER_BYTES / 2**20:,.0f} MiB)")
            return safe_load(answer)
        except FileNotFoundError:
            raise NoAnswer("the notebook's kernel gave no answer (code in the notebook changed how it runs "
                           "the grader's questions)") from None

    def report(self, names: Iterable[str]) -> dict[str, Any]:
        """What each notebook name holds, as the grader's objects (functions as handles)."""
        names = list(names)
        try:
            answer = self._question({"kind": "report", "names": names})
        except Unreadable as err:
            fail(f"the grader cannot read what {', '.join(f'`{n}`' for n in names)} hold: it contains "
                 f"{err}, defined in the notebook. Hand in what the task asks for (a run of run_experiment, "
                 "a function you define with def).")
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            fail("the notebook did not report its answers to the grader. Restart the kernel and run all cells.")
        values = answer.get("values")
        if not isinstance(values, dict):
            fail("the notebook did not report its answers to the grader.")
        return {n: self._value(values.get(n), n) for n in names}

    def _value(self, value: Any, name: str) -> Any:
        if isinstance(value, dict) and value.get("_kind") == "function":
            return RemoteFunction(self, name)
        if isinstance(value, dict) and value.get("_kind") == "run":
            return ReportedRun(value)
        if isinstance(value, dict) and "_kind" not in value:
            return {k: self._value(v, f"{name}[{k!r}]") for k, v in value.items()}
        return value

    def call(self, name: str, args: tuple, kwargs: dict, references: tuple[Any, ...]) -> Any:
        self.calls.append((name, references))
        labels = [f"{getattr(r, '__module__', '?')}.{getattr(r, '__qualname__', '?')}" for r in references]
        shown = describe_call(name, args, kwargs)
        try:
            answer = self._question({"kind": "call", "name": name, "args": args, "kwargs": kwargs,
                                     "references": labels, "fingerprints": fingerprints(references),
                                     "rng": torch.get_rng_state()})
        except Unreadable as err:
            fail(f"{shown} returned an object the grader cannot read back (it holds {err}, defined in the "
                 "notebook). Return plain numbers, lists, tensors or models, as the task asks.")
        except NoAnswer as err:
            fail(f"{shown}: {err}.")
        status = answer.get("status") if isinstance(answer, dict) else None
        if status == "invalid":
            fail(f"`{name}` should be a function you define with `def` in this notebook; it is a "
                 f"{answer.get('type')}." if answer.get("type") != "NoneType" else
                 f"`{name}` is still None: define the function in the cell above and run it.")
        if status == "reference":
            fail(f"`{name}` is gptlib's or torch's own function for this task; the task is to write it yourself.")
        if status == "not_implemented":
            fail(f"`{name}` is not written yet (it raises NotImplementedError): replace the placeholder with "
                 "your code and run its cell again.")
        if status == "used_reference":
            fail(f"`{name}` calls a gptlib or torch function that does this task for you; the task is to write "
                 "that computation yourself.")
        if status == "interrupted":
            fail(f"{shown} was interrupted.")
        if status == "error":
            text = answer.get("message") or ""
            fail(f"{shown} raised {answer.get('error')}{': ' + text if text else ''}. Run your function on a "
                 "small example to find out why.")
        if status == "unreadable":
            fail(f"{shown} returned something the grader cannot read back ({answer.get('message', '')[:80]}). "
                 "Return plain numbers, lists, tensors or models, as the task asks.")
        if status != "ok":
            fail(f"{shown}: the notebook's kernel gave no usable answer.")
        if answer.get("module") != "__main__":
            fail(f"`{name}` comes from the module {answer.get('module')!r}; define it with `def` in this notebook.")
        value = answer.get("value")
        if isinstance(value, dict) and "_unreadable" in value:
            fail(f"{shown} returned {value['_unreadable']}, which the grader cannot read; return plain numbers, "
                 "lists, tensors or models, as the task asks.")
        return _carry_back(args, answer.get("args") or [], answer.get("grads") or [], value)


def _carry_back(args: tuple, returned: list[Any], grads: list[Any], value: Any) -> Any:
    """Give the grader's own argument objects the state the student's function left them in
    (models trained or changed in place, the gradient a returned loss sent back to a tensor),
    and map a returned argument back to the original."""
    for original, grad in zip(args, grads):
        if isinstance(original, torch.Tensor) and isinstance(grad, torch.Tensor) and original.requires_grad \
                and grad.shape == original.shape:
            original.grad = grad
    for original, after in zip(args, returned):
        if isinstance(original, nn.Module) and isinstance(after, nn.Module) and type(after) is type(original):
            original.__dict__.clear()
            original.__dict__.update(after.__dict__)
        if value is after and after is not None:
            value = original
    return value


def fingerprints(references: Iterable[Any]) -> list[str]:
    """Fingerprints of the references' code (and of the code of their methods, for classes),
    computed here from the grader's own installation."""
    import inspect
    import types

    from gptlib.assignments.fingerprints import fingerprint

    codes = []
    for ref in references:
        members = [ref] if not isinstance(ref, type) else [vars(ref).get("forward")]  # a loss class: its forward
        for member in members:
            member = inspect.unwrap(member) if callable(member) else member
            if isinstance(member, types.FunctionType):  # torch's C functions have no code to compare
                codes.append(fingerprint(member.__code__))
    return codes


def describe_call(name: str, args: tuple, kwargs: dict) -> str:
    shown = ", ".join([*(short(a) for a in args), *(f"{k}={short(v)}" for k, v in kwargs.items())])
    return f"{name}({shown})"


class RemoteFunction:
    """A student's function, called in the student's kernel on the grader's arguments."""

    def __init__(self, channel: Channel, name: str):
        self.channel, self.name = channel, name

    def __call__(self, *args: Any, reference: tuple[Any, ...] = (), **kwargs: Any) -> Any:
        return self.channel.call(self.name, args, kwargs, tuple(reference))

    def __repr__(self) -> str:
        return f"<the notebook's function {self.name}>"


class ReportedRun:
    """A run as the kernel reported it: settings, numbers and weights, nothing callable.

    :func:`gptlib.assignments.verify.verified_run` rebuilds its model on the grader's side
    from the grader's own untrained classifier and the reported weights; this object holds
    no model and is not changed."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.config = data.get("config")
        self.class_names = data.get("class_names")
        self.accuracy = data.get("accuracy")
        self.loss = data.get("loss")
        self.name = data.get("name")

    @property
    def state(self) -> dict[str, torch.Tensor]:
        state = self.data.get("state")
        return state if isinstance(state, dict) else {}

    @property
    def digests(self) -> dict[str, str]:
        digests = self.data.get("digests")
        return digests if isinstance(digests, dict) else {}

    @property
    def requires_grad(self) -> dict[str, bool]:
        flags = self.data.get("requires_grad")
        return flags if isinstance(flags, dict) else {}

    @property
    def has_model(self) -> bool:
        return "state" in self.data

    def trains(self, prefix: str) -> bool:
        """Whether any reported parameter under ``prefix`` trains."""
        return any(flag for name, flag in self.requires_grad.items() if name.startswith(prefix))

    @property
    def train_labels(self) -> list[int] | None:
        labels = self.data.get("train_labels")
        return labels if isinstance(labels, list) else None

    def __repr__(self) -> str:
        return f"<a run reported by the notebook ({self.data.get('type')})>"


__all__ = ["MAX_ANSWER_BYTES", "Channel", "Limits", "NoAnswer", "RemoteFunction", "ReportedRun", "Unreadable", "allowed",
           "describe_call", "safe_load"]
