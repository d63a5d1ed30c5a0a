"""What machine a benchmark ran on: printed beside every figure, so runs can be compared honestly."""

from __future__ import annotations

import asyncio
import bisect
import importlib.metadata
import os
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user + system) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(roots: dict[str, list[int]], children: bool = True) -> dict[str, float]:
    """CPU seconds so far of each named group: its root processes and, with `children`, their children
    (PostgreSQL's backends are children of the postmaster; finding them reads all of /proc). Take two
    readings and subtract for an interval."""
    if children:
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    else:
        pids = [pid for group in roots.values() for pid in group]
    stats = {pid: s for pid in pids if (s := _stat(pid)) is not None}
    out = {}
    for name, group in roots.items():
        members = set(group) & set(stats)
        out[name] = sum(stats[p][1] for p in members)
        out[name] += sum(s[1] for p, s in stats.items() if s[0] in members and p not in members)
    return out


class CpuSampler:
    """CPU seconds of named process groups (`cpu_seconds`) and of this process (`own`), sampled every
    `interval` s while running, so that the cores each used can be read for any window afterwards (a
    drain's first to last output: the start-up before it is left out)."""

    def __init__(self, groups: dict[str, list[int]], interval: float = 0.05, children: bool = False) -> None:
        self.groups, self.interval, self.children = groups, interval, children
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        got = cpu_seconds(self.groups, self.children)
        got["own"] = time.process_time()
        self.samples.append((time.time(), got))

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._sample()

    def cores(self, start: float, end: float) -> dict[str, float]:
        """Cores used by each group between the last sample at or before `start` and the first at or
        after `end` (wall clock, time.time()); none for a window under two sampling intervals, where
        the samples' own spacing would be most of it (the --quick drains)."""
        if end - start < 2 * self.interval:
            return {}
        stamps = [t for t, _ in self.samples]
        i = max(0, bisect.bisect_right(stamps, start) - 1)
        j = min(len(stamps) - 1, bisect.bisect_left(stamps, end))
        (t0, a), (t1, b) = self.samples[i], self.samples[j]
        return {k: (b[k] - a[k]) / (t1 - t0) for k in a} if t1 > t0 else {}
