"""Memory of groups of processes, as the machine counts it: PSS (proportional set size).

PSS splits each shared page between the processes that map it, so N kernels mapping one file
count it once over the machine, unlike RSS. Used by ``benchmarks/classroom.py``.
"""

from __future__ import annotations

import os
from pathlib import Path


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return found


def rollup(pid: int) -> dict[str, int]:
    """kB of Pss, Pss_Anon, Pss_File and Pss_Shmem of one process (zeros once it has gone)."""
    out = dict.fromkeys(("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"), 0)
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in out:
                out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _mapped_files(pid: int) -> set[str]:
    """The ``.pt`` files a process maps (mapped base weights, mapped store entries)."""
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return set()
    return {parts[5] for parts in (line.split(maxsplit=5) for line in lines)
            if len(parts) == 6 and parts[5].endswith(".pt")}


class PssSampler:
    """The peak over time of the summed PSS of some processes and their children."""

    def __init__(self, pids: list[int]):
        self.pids, self.samples = pids, 0
        self.peak = {"Pss": 0, "Pss_Anon": 0, "Pss_File": 0, "Pss_Shmem": 0}
        self.worker_peak = dict.fromkeys(pids, 0)
        self.mapped: dict[int, set[str]] = {p: set() for p in pids}

    def sample(self) -> None:
        total = dict.fromkeys(self.peak, 0)
        for pid in self.pids:
            mine = 0
            for p in _family(pid):
                r = rollup(p)
                mine += r["Pss"]
                for key in total:
                    total[key] += r[key]
            self.worker_peak[pid] = max(self.worker_peak[pid], mine)
            if self.samples % 4 == 0:
                self.mapped[pid] |= _mapped_files(pid)
        if total["Pss"] > self.peak["Pss"]:
            self.peak = total
        self.samples += 1


def machine_ram() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0
