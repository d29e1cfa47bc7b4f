"""Running a submission so that its checks are judged outside the student's process.

:class:`JudgingMixin` changes one thing in how nbclient runs a notebook: after a check cell
has run in the student's kernel, the grader (this process) judges it with
:func:`gptlib.assignments.judge.judge`, asking the still-running kernel questions between
cells, and the verdict replaces everything the cell displayed. Per question, a time limit
(the kernel is interrupted) and a memory limit (the kernel's resident memory, polled) from
the teacher's configuration; hitting one fails the check with a line that says which.

Two users: :class:`gptlib.assignments.nbgrader_hook.GradedExecute` (nbgrader's ``Execute``
with the mixin, for ``nbgrader autograde``), and :class:`JudgingClient` (nbclient's
``NotebookClient`` with the mixin, for ``gptlib assignments grade``).

What judging needs (torch, the checks, torch's optimizer machinery) is loaded by
:func:`warm` in a thread while the kernel starts and runs the first cells, so the grader's
own start-up overlaps the student's code instead of adding to it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from traitlets import Dict, Float, Unicode
from traitlets.config import LoggingConfigurable

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
    replay = Unicode("", help="How run checks verify a run: full (train it again) or measure; default: "
                     "$GPTLIB_GRADING_REPLAY, else full.").tag(config=True)
    data_dir = Unicode("", help="The course's files (data/...) as the teacher released them ({assignment}: "
                       "the assignment's id); default: the assignment's source folder under nbgrader, else "
                       "gptlib's notebooks/assignments.").tag(config=True)

    def _profile(self) -> str:
        import os

        return (self.grading_profile or os.environ.get(GRADING_ENV, "") or "smoke").strip().lower()

    def _replay(self) -> str:
        import os

        from gptlib.assignments.profiles import REPLAY_ENV

        return (self.replay or os.environ.get(REPLAY_ENV, "") or "full").strip().lower()

    def _data_dir(self) -> Path | None:
        if self.data_dir:
            return Path(self.data_dir)
        from gptlib.assignments.release import default_source_dir

        try:
            return default_source_dir()
        except FileNotFoundError:
            return None

    def _limits(self, grade_id: str | None) -> Any:
        from gptlib.assignments.channel import Limits

        own = self.check_limits.get(grade_id or "", {})
        memory = float(own.get("memory_mb", self.check_memory_mb) or 0) or None
        return Limits(seconds=float(own.get("seconds", self.check_seconds)), memory_mb=memory)

    def _kernel_pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    async def _ask(self, code: str, limits: Any) -> None:
        """Run ``code`` silently in the kernel; NoAnswer when a limit is hit or it stopped."""
        from gptlib.assignments.channel import NoAnswer

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
                self.__dict__["_kernel_gone"] = True
                raise NoAnswer("the notebook's kernel stopped while answering")
            used = _rss_mb(pid) if limits.memory_mb else None
            over_time = time.monotonic() > deadline
            over_memory = used is not None and used > limits.memory_mb
            if over_time or over_memory:
                await ensure_async(self.km.interrupt_kernel())
                await self._drain(msg_id)
                if over_memory:
                    raise NoAnswer(f"stopped when the kernel used {used:,.0f} MiB, over the memory limit of "
                                   f"{limits.memory_mb:,.0f} MiB your teacher set for this check")
                raise NoAnswer(f"stopped after {limits.seconds:g} s, the time limit your teacher set for one "
                               "call of this check; make the code faster")

    async def _drain(self, msg_id: str, seconds: float = 10.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=0.2))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return

    def _judge_cell(self, cell: Any, loop: asyncio.AbstractEventLoop) -> Any:
        self._warming().join()
        from gptlib.assignments.channel import Channel, Limits
        from gptlib.assignments.judge import judge

        def ask(code: str, limits: Limits) -> None:
            asyncio.run_coroutine_threadsafe(self._ask(code, limits), loop).result()

        gid = _grade_id(cell) or "?"
        channel = Channel(ask, self._limits(gid))
        try:
            return judge(gid, cell.source, channel, student_sources(self.nb), self._profile(), self._data_dir(),
                         self._replay())
        finally:
            channel.close()

    def _warming(self) -> threading.Thread:
        if "_warm_thread" not in self.__dict__:
            self.__dict__["_warm_thread"] = threading.Thread(target=warm, args=(self._profile(),), daemon=True)
            self.__dict__["_warm_thread"].start()
        return self.__dict__["_warm_thread"]

    async def async_execute_cell(self, cell: Any, cell_index: int, execution_count: int | None = None,
                                 store_history: bool = True) -> Any:
        self._warming()  # started with the first cell, beside the kernel
        if self.__dict__.get("_kernel_gone"):  # a cell above ended the kernel: nothing more runs
            if is_check_cell(cell) and cell.source.strip():
                from gptlib.assignments.judge import Verdict

                verdict = Verdict(_grade_id(cell) or "?", False, "the notebook's kernel stopped before this check "
                                  "(code above ended it, e.g. os._exit or a crash); nothing after it was graded.")
                cell.outputs = verdict.outputs()
                self.verdicts.append(verdict)
            return cell
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError:
            self.__dict__["_kernel_gone"] = True
            return await self.async_execute_cell(cell, cell_index, execution_count, store_history)
        if is_check_cell(cell) and cell.source.strip():
            verdict = await asyncio.to_thread(self._judge_cell, cell, asyncio.get_running_loop())
            cell.outputs = verdict.outputs()
            self.verdicts.append(verdict)
        return cell

    execute_cell = run_sync(async_execute_cell)

    @property
    def verdicts(self) -> list[Any]:  # gptlib.assignments.judge.Verdict
        if "_verdicts" not in self.__dict__:
            self.__dict__["_verdicts"] = []
        return self.__dict__["_verdicts"]


def warm(profile: str) -> None:
    """Load what judging needs: torch and its optimizer machinery, the checks, the tokenizer."""
    import torch

    from gptlib.assignments import a01, a02, a03, a04, a05, channel, judge  # noqa: F401
    from gptlib.finetune import run_finetune  # noqa: F401
    from gptlib.tokenizer import get_tokenizer

    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)  # the first one imports torch's compiler
    get_tokenizer()


class JudgingClient(JudgingMixin, NotebookClient):
    """nbclient's NotebookClient whose check cells are judged by this process."""


__all__ = ["JudgingClient", "JudgingMixin", "student_sources", "warm"]
