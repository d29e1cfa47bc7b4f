"""The check cells' way in: fresh checks, and a look for anything that was tampered with.

Every locked check cell starts with::

    import sys
    sys.modules.pop("gptlib.assignments.integrity", None)
    from gptlib.assignments.integrity import checks

so the import runs this file anew: whatever a student assigned to the old module, or put
into ``sys.modules`` in its place, is not what the cell gets. :func:`checks` then imports the
modules that hold the checks' logic afresh the same way, makes them read-only, and calls
:func:`verify`, which refuses to grade when

* a ``gptlib`` entry of ``sys.modules`` is not a module loaded from gptlib's own folder;
* a function or class of a gptlib module, or one of the torch, math, importlib and builtin
  functions the checks rely on, was replaced by something defined in the notebook (a
  ``lambda``, a ``def`` in a cell: their code does not come from an installed file).

Checks call :func:`verify` again after running student code, which could patch things
while it is being called. This keeps a student's own run of the checks honest against
ordinary mistakes and casual tampering; it is not what grading relies on. When grading, the
checks decide nothing in the student's kernel (:func:`checks` then hands back checks that
fail with a line the grader replaces): the grader judges them in its own process
(:mod:`gptlib.assignments.graded_execute`), where no code of the notebook runs.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib
import sys
import sysconfig
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # gptlib/
# The modules that hold the checks' logic, imported afresh (in this order) for every check.
LOGIC = ("feedback", "profiles", "runner", "student", "inputs", "verify")
ASSIGNMENT_MODULES = ("a01", "a02", "a03", "a04", "a05")
WATCHED = {
    "builtins": ("abs", "all", "any", "callable", "dict", "enumerate", "float", "getattr", "hasattr", "id",
                 "int", "isinstance", "issubclass", "iter", "len", "list", "max", "min", "next", "print",
                 "range", "repr", "round", "sorted", "str", "sum", "tuple", "type", "zip", "__import__"),
    "math": ("isclose", "isfinite", "sqrt", "log", "exp"),
    "importlib": ("reload", "import_module"),
    "copy": ("deepcopy",),
    "torch": ("allclose", "arange", "as_tensor", "cat", "equal", "exp", "isclose", "log_softmax",
              "manual_seed", "no_grad", "ones", "softmax", "stack", "tensor", "zeros"),
    "torch.nn.functional": ("binary_cross_entropy_with_logits", "cross_entropy", "log_softmax",
                            "nll_loss", "softmax"),
    "torch.nn.Module": ("__call__", "_call_impl", "eval", "modules", "named_modules", "named_parameters",
                        "parameters", "state_dict", "train"),
    "torch.Tensor": ("detach", "cpu", "tolist", "item", "float", "clone", "__eq__", "__ne__"),
}


def _roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {str(PACKAGE_DIR)} | {str(Path(paths[k]).resolve()) for k in ("stdlib", "platstdlib", "purelib", "platlib")
                                 if paths.get(k)}
    for name in ("torch", "numpy", "pandas"):
        mod = sys.modules.get(name)
        if getattr(mod, "__file__", None):
            roots.add(str(Path(mod.__file__).resolve().parent))
    return tuple(sorted(roots))


def _installed(filename: str, roots: tuple[str, ...]) -> bool:
    if filename.startswith("<frozen "):
        return True
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _foreign(value: Any, roots: tuple[str, ...]) -> bool:
    """Whether ``value`` is code defined outside installed files (in a notebook cell)."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, property):
        return any(_foreign(f, roots) for f in (value.fget, value.fset) if f is not None)
    if isinstance(value, types.MethodType):
        value = value.__func__
    if isinstance(value, types.FunctionType):
        return not _installed(value.__code__.co_filename, roots)
    if isinstance(value, type):
        return getattr(value, "__module__", "") == "__main__"
    func = getattr(value, "func", None)  # functools.partial
    return isinstance(func, types.FunctionType) and _foreign(func, roots)


def _generated(cls: type, attr: str, value: Any) -> bool:
    """A dunder method that ``dataclasses`` wrote (its code has no file of its own)."""
    return ("__dataclass_fields__" in vars(cls) and attr.startswith("__") and isinstance(value, types.FunctionType)
            and value.__code__.co_filename == "<string>" and value.__qualname__ == f"{cls.__qualname__}.{attr}")


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None:
            obj = mod
            for attr in parts[i:]:
                obj = getattr(obj, attr)
            return obj
    return None


def tampering() -> list[str]:
    """What was changed by code from the notebook (empty when nothing was)."""
    roots = _roots()
    found = []
    for name, mod in list(sys.modules.items()):
        if name != "gptlib" and not name.startswith("gptlib."):
            continue
        if mod is None:
            continue
        file = getattr(mod, "__file__", None)
        if not isinstance(mod, types.ModuleType) or not file or not _installed(file, (str(PACKAGE_DIR),)):
            found.append(f"sys.modules[{name!r}] is not gptlib's own module")
            continue
        for attr, value in list(vars(mod).items()):
            if _foreign(value, roots):
                found.append(f"{name}.{attr}")
            elif isinstance(value, type) and value.__module__ == name:
                found += [f"{name}.{attr}.{k}" for k, v in list(vars(value).items())
                          if _foreign(v, roots) and not _generated(value, k, v)]
    for owner, attrs in WATCHED.items():
        obj = builtins if owner == "builtins" else _resolve(owner)
        if obj is None:
            continue
        for attr in attrs:
            value = vars(obj).get(attr) if isinstance(obj, type) else getattr(obj, attr, None)
            if value is not None and _foreign(value, roots):
                found.append(f"{owner}.{attr}")
    return found


def verify() -> None:
    """Refuse to grade (CheckFailed) when :func:`tampering` finds anything."""
    found = tampering()
    if found:
        from gptlib.assignments.feedback import fail

        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        fail(f"code in this notebook replaced parts of gptlib, torch or Python that the checks rely "
             f"on ({shown}). Remove that code, restart the kernel and run all cells again.")


class _ReadOnly(types.ModuleType):
    """A module whose attributes cannot be assigned or deleted (its dunders can, for the
    import system): ``checks.make_classifier = lambda *a: None`` raises instead of cheating."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__"):
            super().__setattr__(name, value)
            return
        raise AttributeError(f"{self.__name__} is read-only: its {name!r} cannot be changed")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self.__name__} is read-only: its {name!r} cannot be deleted")


def read_only(module: types.ModuleType) -> types.ModuleType:
    """Make ``module``'s attributes read-only (see :class:`_ReadOnly`)."""
    if type(module) is types.ModuleType:  # one made read-only before a reload stays so
        module.__class__ = _ReadOnly
    return module


def quiet(check: Callable[..., Any]) -> Callable[..., Any]:
    """``check`` with warnings off and stderr sent to stdout while it runs (nbgrader takes any
    output to stderr in a check cell, a library's warning or a progress bar, for a failure),
    and any error of its own reported as a short message, not a traceback through the checker."""

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> Any:
        from gptlib.assignments.feedback import CheckFailed

        with warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
            warnings.simplefilter("ignore")
            try:
                return check(*args, **kwargs)
            except (CheckFailed, KeyboardInterrupt):
                raise
            except Exception as err:  # never a traceback through the checker's code
                raise CheckFailed(f"the check could not run ({type(err).__name__}: {str(err)[:200]}). Run "
                                  "the notebook from the top (Kernel > Restart and Run All); if this stays, "
                                  "tell your teacher.") from None

    return run


def _judged_elsewhere(*args: Any, **kwargs: Any) -> None:
    from gptlib.assignments.feedback import fail

    fail("when grading, this check is judged by the grader, outside this notebook "
         "(gptlib.assignments.graded_execute), and its verdict replaces this line. If you read this in "
         "your feedback, the grader was not set up to judge the checks: tell your teacher.")


def checks(assignment: str) -> types.ModuleType:
    """The checks of one assignment (``"a01"`` ...), freshly imported, read-only, verified.

    In a kernel started to grade (``$GPTLIB_GRADING_PROFILE``; not ``nbgrader validate``) the
    checks decide nothing here: each one fails with a line that the grader, judging in its own
    process (:mod:`gptlib.assignments.graded_execute`), replaces."""
    key = assignment.lower()
    if key not in ASSIGNMENT_MODULES:
        raise ValueError(f"Unknown assignment {assignment!r}; use one of {ASSIGNMENT_MODULES}.")
    from gptlib.support.environ import grading, started_environ

    if grading() and started_environ().get("NBGRADER_EXECUTION") != "validate":  # validate: the student's own run
        module = importlib.import_module(f"gptlib.assignments.{key}")
        handed = types.ModuleType(f"gptlib.assignments.{key}.judged_by_the_grader")
        for attr in module.__all__:
            setattr(handed, attr, _judged_elsewhere if callable(vars(module)[attr]) else vars(module)[attr])
        return read_only(handed)
    for name in (*LOGIC, key):
        full = f"gptlib.assignments.{name}"
        sys.modules.pop(full, None)
        module = importlib.import_module(full)
        if name == key:
            for attr in module.__all__:
                if isinstance(vars(module)[attr], types.FunctionType):
                    vars(module)[attr] = quiet(vars(module)[attr])
        read_only(module)
    verify()
    return sys.modules[f"gptlib.assignments.{key}"]


read_only(sys.modules[__name__])

__all__ = ["PACKAGE_DIR", "checks", "read_only", "tampering", "verify"]
