"""Heap snapshots on demand, for finding what grows in a long-running gateway.

Off unless `ESTATE_GATEWAY_TRACEMALLOC_DIR` names a directory: then `tracemalloc` starts (keeping
`ESTATE_GATEWAY_TRACEMALLOC_FRAMES` frames per allocation, default 6) and every SIGUSR2 writes
`snapshot-<n>.pickle` there after a full garbage collection, so two snapshots compare live objects,
not garbage waiting for the collector. tracemalloc costs CPU and memory of its own (roughly 2-3× the
CPU of allocation-heavy code): a diagnostic for soaks and incidents, not for production.

Compare two snapshots with `python -m gateway.runtime.memtrace OLD NEW` (the allocation sites that
grew most, and the call chains of the biggest).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import tracemalloc
from pathlib import Path

log = logging.getLogger(__name__)
DIR_ENV = "ESTATE_GATEWAY_TRACEMALLOC_DIR"
FRAMES_ENV = "ESTATE_GATEWAY_TRACEMALLOC_FRAMES"


class HeapSnapshots:
    """Writes a numbered snapshot into `directory` each time `take` is called (SIGUSR2)."""

    def __init__(self, directory: Path, frames: int) -> None:
        self.directory, self.frames = directory, frames
        self.taken = 0

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, self.take)
        log.warning(
            "tracemalloc on (%d frames): SIGUSR2 writes a heap snapshot to %s", self.frames, self.directory
        )

    def take(self) -> Path:
        gc.collect()
        self.taken += 1
        path = self.directory / f"snapshot-{self.taken}.pickle"
        tmp = path.with_suffix(".tmp")
        tracemalloc.take_snapshot().dump(str(tmp))
        tmp.rename(path)  # whoever waits for the file never reads half of it
        log.warning("heap snapshot %s (traced %.1f MiB)", path, tracemalloc.get_traced_memory()[0] / 2**20)
        return path


def from_environment(environ: dict[str, str] | None = None) -> HeapSnapshots | None:
    env = os.environ if environ is None else environ
    directory = env.get(DIR_ENV)
    if not directory:
        return None
    return HeapSnapshots(Path(directory), int(env.get(FRAMES_ENV, "6")))


def _filtered(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    return snapshot.filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        ]
    )


def compare(old: Path, new: Path, top: int = 20, chains: int = 5) -> list[str]:
    """The allocation sites whose live memory grew most from `old` to `new`, as printable lines."""
    before = _filtered(tracemalloc.Snapshot.load(str(old)))
    after = _filtered(tracemalloc.Snapshot.load(str(new)))
    total_before = sum(stat.size for stat in before.statistics("filename"))
    total_after = sum(stat.size for stat in after.statistics("filename"))
    lines = [
        f"traced heap {total_before / 2**20:.1f} → {total_after / 2**20:.1f} MiB"
        f" ({(total_after - total_before) / 2**20:+.2f} MiB)",
        f"{'grew KiB':>10} {'now KiB':>10} {'+blocks':>9}  allocated at",
    ]
    by_line = after.compare_to(before, "lineno")
    for stat in by_line[:top]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size_diff / 1024:>+10.1f} {stat.size / 1024:>10.1f} {stat.count_diff:>+9,}"
            f"  {frame.filename}:{frame.lineno}"
        )
    for stat in after.compare_to(before, "traceback")[:chains]:
        lines.append(f"call chain of {stat.size_diff / 1024:+.1f} KiB ({stat.count_diff:+,} blocks):")
        lines.extend(f"    {line}" for line in stat.traceback.format(most_recent_first=True))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="what grew between two heap snapshots")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--chains", type=int, default=5)
    args = parser.parse_args(argv)
    for line in compare(args.old, args.new, args.top, args.chains):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
