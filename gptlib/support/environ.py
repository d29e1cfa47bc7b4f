"""The environment a process *started* with, which code running inside it cannot change.

A grading kernel runs the student's code too; ``os.environ`` is theirs to edit, the
environment the kernel was started with (``/proc/self/environ`` on Linux) is not. Grading
decisions (which profile, whether a class's shared store may be read) read this one.
"""

from __future__ import annotations

import os
from pathlib import Path

GRADING_ENV = "GPTLIB_GRADING_PROFILE"


def started_environ() -> dict[str, str]:
    """The environment this process started with (Linux), else the current one."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def grading() -> bool:
    """Whether this process was started to grade (``$GPTLIB_GRADING_PROFILE`` at start)."""
    return bool(started_environ().get(GRADING_ENV, "").strip())
