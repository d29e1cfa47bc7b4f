"""Running a submission so that its checks are judged outside the student's process.

:class:`JudgingMixin` changes one thing in how nbclient runs a notebook: after a check cell
has run in the student's kernel, the grader (this process) judges it with
:func:`gptlib.assignments.judge.judge`, asking the still-running kernel questions between
cells, and the verdict replaces everything the cell displayed. Per question, a time limit
(the kernel is interrupted) and a memory limit (the kernel's resident memory, polled) from
the teacher's configuration; hitting one fails the check with a line that says which.

Two users:

* :class:`GradedExecute`, nbgrader's ``Execute`` preprocessor with the mixin, put in its place
  in autograde's list by ``nbgrader_config.py``::

      from gptlib.assignments.graded_execute import autograde_preprocessors
      c.Autograde.autograde_preprocessors = autograde_preprocessors()
      c.GradedExecute.check_seconds = 120       # per question to the kernel
      c.GradedExecute.check_memory_mb = 6000    # the kernel's resident memory while it answers
      c.GradedExecute.data_dir = "source/ch6"   # the course's data/ as the teacher made it

* :class:`JudgingClient`, nbclient's ``NotebookClient`` with the mixin, for
  ``gptlib assignments grade``.
"""

from __future__ import annotations

import asyncio
import queue
import time
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbgrader.preprocessors import Execute
from traitlets import Dict, Float, Unicode
from traitlets.config import LoggingConfigurable

from gptlib.assignments.channel import Channel, Limits, NoAnswer
from gptlib.assignments.judge import Verdict, judge
from gptlib.assignments.release import is_check_cell, is_teacher_cell
from gptlib.support.environ import GRADING_ENV


def _grade_id(cell: Any) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def student_sources(nb: Any) -> list[str]:
    """The text of the cells a student wrote: solution cells and cells of their own."""
    return [cell.source for cell in nb.cells if cell.cell_type == "code" and not is_teacher_cell(cell)]


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except Exception:
        return None


class JudgingMixin(LoggingConfigurable):
    """Judge every check cell in this process, after it ran in the kernel (see the module)."""

    check_seconds = Float(120.0, help="Seconds one question to the student's kernel may take.").tag(config=True)
    check_memory_mb = Float(0.0, help="The student's kernel's resident memory (MiB) allowed while it "
                            "answers a question; 0: no limit.").tag(config=True)
    check_limits = Dict(help="Per check cell (grade_id): {'seconds': ..., 'memory_mb': ...}.").tag(config=True)
    grading_profile = Unicode("", help="The profile the checks grade with (smoke or book); default: "
                              "$GPTLIB_GRADING_PROFILE, else smoke.").tag(config=True)
    data_dir = Unicode("", help="The course's files (data/...) as the teacher released them; default: "
                       "gptlib's notebooks/assignments.").tag(config=True)

    def _profile(self) -> str:
        import os

        return (self.grading_profile or os.environ.get(GRADING_ENV, "") or "smoke").strip().lower()

    def _data_dir(self) -> Path | None:
        if self.data_dir:
            return Path(self.data_dir)
        from gptlib.assignments.release import default_source_dir

        try:
            return default_source_dir()
        except FileNotFoundError:
            return None

    def _limits(self, grade_id: str | None) -> Limits:
        own = self.check_limits.get(grade_id or "", {})
        memory = float(own.get("memory_mb", self.check_memory_mb) or 0) or None
        return Limits(seconds=float(own.get("seconds", self.check_seconds)), memory_mb=memory)

    def _kernel_pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    async def _ask(self, code: str, limits: Limits) -> None:
        """Run ``code`` silently in the kernel; NoAnswer when a limit is hit or it stopped."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + limits.seconds
        pid = self._kernel_pid()
        while True:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=0.1))
            except queue.Empty:
                msg = None
            if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
                return
            if not await ensure_async(self.km.is_alive()):
                raise NoAnswer("the notebook's kernel stopped while answering")
            used = _rss_mb(pid) if limits.memory_mb else None
            over_time = time.monotonic() > deadline
            if over_time or (used is not None and used > limits.memory_mb):
                await ensure_async(self.km.interrupt_kernel())
                await self._drain(msg_id)
                if over_time:
                    raise NoAnswer(f"stopped after {limits.seconds:g} s, the time limit your teacher set for one "
                                   "call of this check; make the code faster")
                raise NoAnswer(f"stopped when the kernel used {used:,.0f} MiB, over the memory limit of "
                               f"{limits.memory_mb:,.0f} MiB your teacher set for this check")

    async def _drain(self, msg_id: str, seconds: float = 10.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=0.2))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return

    def _judge_cell(self, cell: Any, loop: asyncio.AbstractEventLoop) -> Verdict:
        def ask(code: str, limits: Limits) -> None:
            asyncio.run_coroutine_threadsafe(self._ask(code, limits), loop).result()

        gid = _grade_id(cell) or "?"
        channel = Channel(ask, self._limits(gid))
        try:
            return judge(gid, cell.source, channel, student_sources(self.nb), self._profile(), self._data_dir())
        finally:
            channel.close()

    async def async_execute_cell(self, cell: Any, cell_index: int, execution_count: int | None = None,
                                 store_history: bool = True) -> Any:
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if is_check_cell(cell) and cell.source.strip():
            verdict = await asyncio.to_thread(self._judge_cell, cell, asyncio.get_running_loop())
            cell.outputs = verdict.outputs()
            self.verdicts.append(verdict)
        return cell

    execute_cell = run_sync(async_execute_cell)

    @property
    def verdicts(self) -> list[Verdict]:
        if "_verdicts" not in self.__dict__:
            self.__dict__["_verdicts"] = []
        return self.__dict__["_verdicts"]


class JudgingClient(JudgingMixin, NotebookClient):
    """nbclient's NotebookClient whose check cells are judged by this process."""


class GradedExecute(JudgingMixin, Execute):
    """nbgrader's Execute preprocessor, with every check cell judged by the grader's process."""


def autograde_preprocessors() -> list[Any]:
    """nbgrader's autograde preprocessors with :class:`GradedExecute` in place of Execute."""
    from nbgrader.converters import Autograde

    return [GradedExecute if p is Execute else p for p in Autograde.class_traits()["autograde_preprocessors"].default()]


__all__ = ["GradedExecute", "autograde_preprocessors", "JudgingClient", "JudgingMixin", "student_sources"]
