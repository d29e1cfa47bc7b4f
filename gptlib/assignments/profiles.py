"""Which settings an assignment runs with, and who chooses them.

A student picks a profile for their own work in the notebook's ``PROFILE`` cell (``None``:
``$GPTLIB_PROFILE``, else the book's run). Whoever grades picks the profile used for
grading by setting ``$GPTLIB_GRADING_PROFILE`` (``book`` or ``smoke``) in the environment
that starts the kernels (``nbgrader autograde``, ``gptlib assignments grade``). That choice
is read from the environment the kernel *started* with (``/proc/self/environ`` on Linux),
so no cell of the notebook can change it, and it overrides the ``PROFILE`` cell: the setup
cell then says so. The checks ask :func:`active_profile`, never the notebook's ``profile``.

Every assignment profile writes its split files below gptlib's cache folder
(``$GPTLIB_HOME``), never next to the notebooks, so that no ``runs/`` or ``figures/`` folder
ends up in a release or a submission.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from gptlib.notebook import PROFILES, Profile, load_profile, profile_device, smoke_data_file
from gptlib.support.environ import GRADING_ENV, started_environ
from gptlib.support.files import cache_dir

REPLAY_ENV = "GPTLIB_GRADING_REPLAY"  # "full" (default) or "measure"
ASSIGNMENTS = ("A01", "A02", "A03", "A04", "A05")

# What each assignment changes in its profile. The tiny smoke model hardly moves at the book's
# learning rate in a few steps: a larger rate and two epochs make the differences show.
_SMOKE = {"epochs": 2, "lr": 1e-3}
_BOOK = {"A02": {"epochs": 10, "eval_freq": 10},  # 25 steps per epoch on 200 messages, 250 in all
         "A05": {"epochs": 10, "eval_freq": 5}}  # a small data set: more, shorter epochs


_GRADER: list[tuple[str, str]] = []  # (profile, replay) while the grader judges a check in its own process


@contextlib.contextmanager
def graded_as(name: str, replay: str = "full") -> Iterator[None]:
    """In the grader's process: the checks run under profile ``name`` (and verify runs the
    ``replay`` way) while the block runs."""
    _GRADER.append((name, replay))
    try:
        yield
    finally:
        _GRADER.pop()


def grading_profile_name() -> str | None:
    """The grader's profile (the grader's own while it judges; else ``$GPTLIB_GRADING_PROFILE``
    as the kernel started), or None."""
    value = (_GRADER[-1][0] if _GRADER else started_environ().get(GRADING_ENV, "")).strip().lower()
    if not value:
        return None
    if value not in PROFILES:
        raise ValueError(f"${GRADING_ENV} is {value!r}; use one of {PROFILES}.")
    return value


def replay_mode() -> str:
    """How checks verify a run: ``full`` (train it again; the default) or ``measure``."""
    value = (_GRADER[-1][1] if _GRADER else started_environ().get(REPLAY_ENV, "full")).strip().lower() or "full"
    if value not in ("full", "measure"):
        raise ValueError(f"${REPLAY_ENV} is {value!r}; use 'full' or 'measure'.")
    return value


def assignment_profile(assignment: str, name: str) -> Profile:
    """The settings of ``assignment`` (``"A01"`` ...) under profile ``name``."""
    assignment = assignment.upper()
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"Unknown assignment {assignment!r}; use one of {ASSIGNMENTS}.")
    base = load_profile(name)
    work = cache_dir() / "assignments" / base.name
    changes = {"work_dir": work, "figures_dir": work / "figures"}
    if base.name == "smoke":
        # the smoke data file always: the checks' directions are reliable on it
        changes.update(_SMOKE, data=str(smoke_data_file()))
    else:
        changes.update(_BOOK.get(assignment, {}))
    return base.replace(**changes)


def active_profile(assignment: str) -> Profile:
    """The profile the checks use: the grader's, else the one the setup cell chose."""
    name = grading_profile_name() or os.environ.get("GPTLIB_PROFILE") or "book"
    return assignment_profile(assignment, name)


def setup(assignment: str, choice: str | None = None) -> Profile:
    """The setup cell's profile: the grader's if one is set, else ``choice`` (the PROFILE
    cell), else ``$GPTLIB_PROFILE``, else the book's. Prints which one and why."""
    grading = grading_profile_name()
    chosen = (choice or os.environ.get("GPTLIB_PROFILE") or "book").strip().lower()
    name = grading or chosen
    if grading is None:
        os.environ["GPTLIB_PROFILE"] = name  # the checks of this kernel use the same choice
    profile = assignment_profile(assignment, name)
    profile_device(profile)  # the smoke profile's tiny model runs fastest on one thread
    note = ""
    if grading is not None:
        note = f" (the grader's choice, ${GRADING_ENV}"
        note += f"; PROFILE = {choice!r} applies when you run the notebook yourself)" if \
            choice and choice.strip().lower() != grading else ")"
    print(f"profile {profile.name!r}{note}: {profile.model_size}, {profile.weights} weights, "
          f"{profile.epochs} epochs at lr {profile.lr:g}, batch {profile.batch_size}, seed {profile.seed}")
    return profile


__all__ = ["GRADING_ENV", "REPLAY_ENV", "active_profile", "assignment_profile", "graded_as",
           "grading_profile_name", "replay_mode", "setup", "started_environ"]
