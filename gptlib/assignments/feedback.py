"""What a check says: ``OK: ...`` on success, or one short message and no traceback.

A failed check raises :class:`CheckFailed`. IPython (Jupyter, nbgrader, ``gptlib assignments
grade``) shows an exception through its ``_render_traceback_`` when it has one, so the
student sees only the message, wrapped to about 80 columns, instead of a traceback through
the checker's code (which would show how the answer is computed). nbgrader still records
the cell's error, so the check earns no points.

Messages say what is wrong and how to find it; they never print the expected value, which
could be pasted back as a constant.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any, NoReturn

import torch
from torch import nn

WIDTH = 78


class CheckFailed(AssertionError):
    """A check's verdict: what is wrong, and how to find it. Shown without a traceback."""

    def _render_traceback_(self) -> list[str]:
        return wrap(f"Check failed: {self}").splitlines()


def wrap(text: str, width: int = WIDTH) -> str:
    """``text`` wrapped to ``width`` columns, paragraph by paragraph."""
    return "\n".join(textwrap.fill(part, width, break_long_words=False, break_on_hyphens=False)
                     for part in str(text).split("\n"))


def fail(message: str) -> NoReturn:
    """Stop the check with ``message`` (what is wrong, and where to look)."""
    raise CheckFailed(message)


def ok(message: str) -> None:
    """The one line a passing check prints."""
    print(wrap(f"OK: {message}"))


def require(value: Any, name: str, hint: str) -> None:
    """Fail when a task's variable is still the placeholder ``None``."""
    if value is None:
        fail(f"`{name}` is still None: {hint}")


def short(value: Any) -> str:
    """A short description of a value for a message (never a whole tensor)."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, nn.Module):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(value: Any, name: str) -> float:
    """``value`` as a plain float; a tensor with one element or a numpy scalar is accepted.

    Only real numbers pass: an object of a class of the student's own (one that claims to
    equal everything, say) is refused."""
    if type(value) is torch.Tensor and value.numel() == 1:
        value = value.item()
    if type(value) in (int, float):
        return float(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        item = value.item()
        if type(item) in (int, float):
            return float(item)
    fail(f"`{name}` should be a number; got {short(value)} ({type(value).__name__}).")


def close(a: float, b: float, tol: float = 1e-6) -> bool:
    """Whether two numbers agree to ``tol`` (relative and absolute)."""
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def plain_tensor(value: Any, name: str) -> torch.Tensor:
    """``value`` as a plain torch.Tensor (a subclass of the student's own is refused)."""
    if type(value) is not torch.Tensor:
        fail(f"`{name}` should be a torch tensor; got {short(value)} ({type(value).__name__}).")
    return value.detach().cpu()


def plain_list(value: Any, name: str) -> list:
    """``value`` (a list, tuple or 1-d tensor) as a plain Python list."""
    if type(value) is torch.Tensor:
        return value.detach().cpu().reshape(-1).tolist()
    if type(value) not in (list, tuple):
        fail(f"`{name}` should be a list (or tuple); got {short(value)} ({type(value).__name__}).")
    return list(value)


def plain_dict(value: Any, name: str, what: str) -> dict:
    """``value`` as a plain dict (``what``: what it should map, for the message)."""
    if type(value) is not dict:
        fail(f"`{name}` should be a dict {what}; got {short(value)} ({type(value).__name__}).")
    return value


__all__ = ["CheckFailed", "close", "fail", "number", "ok", "plain_dict", "plain_list", "plain_tensor",
           "require", "short", "wrap"]
