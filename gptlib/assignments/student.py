"""Calling a student's function from a check: placeholders, errors, and the library's own code.

Where the task is to *write* something the library already has (``calc_accuracy_loader``,
``last_real_index``, ...), :func:`call` refuses the library's function itself, a function
not defined in the notebook, and one that merely calls the library's: while the student's
function runs, every way it could reach the reference (the gptlib modules, the notebook's
names, its default arguments and closure) leads to a stub that raises.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any

from gptlib.assignments import integrity
from gptlib.assignments.channel import RemoteFunction, describe_call
from gptlib.assignments.feedback import CheckFailed, fail, short

# Where a notebook's functions live (a kernel's cells run in __main__); tests add theirs.
NOTEBOOK_MODULES = {"__main__"}
# Where torch's references (functional losses, loss classes) can also be reached from.
TORCH_HOMES = ("torch", "torch.nn", "torch.nn.functional", "torch.nn.modules.loss")


class UsedReference(Exception):
    """Raised by the stub that stands in for a reference function during a student's call."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _label(ref: Any) -> str:
    return f"{getattr(ref, '__module__', '?')}.{getattr(ref, '__qualname__', getattr(ref, '__name__', '?'))}"


def function(fn: Any, name: str, reference: Iterable[Any] = ()) -> types.FunctionType:
    """``fn`` if it is a function defined in the notebook and not a reference; else fail."""
    if fn is None:
        fail(f"`{name}` is still None: define the function in the cell above and run it.")
    for ref in reference:
        if fn is ref:
            fail(f"`{name}` is gptlib's own function for this task; the task is to write it yourself.")
    if not isinstance(fn, types.FunctionType):
        fail(f"`{name}` should be a function you define with `def` in this notebook; got {short(fn)} "
             f"({type(fn).__name__}).")
    if fn.__module__ not in NOTEBOOK_MODULES:
        fail(f"`{name}` comes from the module {fn.__module__!r}; define it with `def` in this notebook.")
    return fn


def _stub(ref: Any) -> Any:
    label = _label(ref)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise UsedReference(label)

    return refused


@contextlib.contextmanager
def references_disabled(references: Iterable[Any], fn: types.FunctionType) -> Iterator[None]:
    """While the block runs, every path from ``fn`` to a reference leads to a stub."""
    refs = [r for r in references if r is not None]
    if not refs:
        yield
        return
    stubs = {id(r): _stub(r) for r in refs}
    ids = set(stubs)
    undo: list[tuple[dict, str, Any]] = []

    def swap(namespace: dict) -> None:  # a module's dict is written directly: some are read-only
        for key, value in list(namespace.items()):
            if id(value) in ids:
                undo.append((namespace, key, value))
                namespace[key] = stubs[id(value)]

    homes = {getattr(r, "__module__", None) for r in refs} | set(TORCH_HOMES)
    for mod_name, mod in list(sys.modules.items()):
        ours = mod_name == "gptlib" or mod_name.startswith("gptlib.")
        if (ours or mod_name in homes) and isinstance(mod, types.ModuleType):
            swap(vars(mod))
    swap(fn.__globals__)
    saved_defaults, saved_kw = fn.__defaults__, fn.__kwdefaults__
    if fn.__defaults__:
        fn.__defaults__ = tuple(stubs.get(id(v), v) for v in fn.__defaults__)
    if fn.__kwdefaults__:
        fn.__kwdefaults__ = {k: stubs.get(id(v), v) for k, v in fn.__kwdefaults__.items()}
    cells = [(c, c.cell_contents) for c in (fn.__closure__ or ()) if _filled(c) and id(c.cell_contents) in ids]
    for cell, value in cells:
        cell.cell_contents = stubs[id(value)]
    try:
        yield
    finally:
        for cell, value in cells:
            cell.cell_contents = value
        fn.__defaults__, fn.__kwdefaults__ = saved_defaults, saved_kw
        for namespace, key, value in reversed(undo):
            namespace[key] = value


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def call(fn: Any, name: str, *args: Any, reference: Iterable[Any] = (), **kwargs: Any) -> Any:
    """Call the student's ``fn``; a placeholder, an error, or reaching a reference becomes
    feedback. Afterwards, checks that the call changed nothing the checks rely on."""
    reference = tuple(reference)
    if isinstance(fn, RemoteFunction):  # graded: the student's kernel runs it, the grader judges
        return fn(*args, reference=reference, **kwargs)
    fn = function(fn, name, reference)
    try:
        with references_disabled(reference, fn):
            return fn(*args, **kwargs)
    except NotImplementedError:
        fail(f"`{name}` is not written yet (it raises NotImplementedError): replace the placeholder "
             "with your code and run its cell again.")
    except UsedReference:
        fail(f"`{name}` calls a gptlib or torch function that does this task for you; the task is to write "
             "that computation yourself.")
    except CheckFailed:
        raise
    except Exception as err:  # the student's bug, reported as feedback
        text = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        fail(f"{describe_call(name, args, kwargs)} raised {type(err).__name__}"
             f"{': ' + text if text else ''}. Run your function on a small example to find out why.")
    finally:
        integrity.verify()


__all__ = ["NOTEBOOK_MODULES", "UsedReference", "call", "describe_call", "function", "references_disabled"]
