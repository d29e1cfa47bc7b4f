"""Fingerprints both sides of grading compute alike: of a tensor's values, of a function's code.

A leaf module: the student's kernel (:mod:`~gptlib.assignments.answer`) and the grader
(:mod:`~gptlib.assignments.channel`, :mod:`~gptlib.assignments.verify`) compute these the
same way, so a digest or a fingerprint made on one side can be compared on the other.
"""

from __future__ import annotations

import hashlib
import types

import torch


def digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's values as float32 on the CPU (the grader computes the same)."""
    data = tensor.detach().to("cpu", torch.float32).contiguous()
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()


def fingerprint(code: types.CodeType) -> str:
    """The code's instructions, names and constants, without its file, line or variable names:
    the same for a copy of a function compiled anywhere, with its locals renamed."""
    consts = [fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    text = repr((code.co_code, code.co_names, consts, code.co_argcount, code.co_kwonlyargcount))
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["digest", "fingerprint"]
