"""Heap snapshots on SIGUSR2 (gateway/runtime/memtrace.py): off by default, and when on, two snapshots
name the allocation site that grew between them."""

from __future__ import annotations

import asyncio
import os
import signal
import tracemalloc
from pathlib import Path

from gateway.runtime import memtrace

HELD: list[bytes] = []


def test_off_unless_the_directory_is_set() -> None:
    assert memtrace.from_environment({}) is None


async def test_two_snapshots_name_what_grew(tmp_path: Path) -> None:
    snapshots = memtrace.from_environment({memtrace.DIR_ENV: str(tmp_path), memtrace.FRAMES_ENV: "3"})
    assert snapshots is not None
    was_tracing = tracemalloc.is_tracing()
    try:
        snapshots.start()
        first = snapshots.take()
        HELD.extend(bytes(1000) + bytes([i % 256]) for i in range(2000))  # ~2 MB that stays
        os.kill(os.getpid(), signal.SIGUSR2)  # the second one as an operator takes it
        for _ in range(100):  # bounded: 5 s
            if (tmp_path / "snapshot-2.pickle").exists():
                break
            await asyncio.sleep(0.05)
        second = tmp_path / "snapshot-2.pickle"
        assert first.exists() and second.exists()
        lines = memtrace.compare(first, second, top=5, chains=1)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR2)
        if not was_tracing:
            tracemalloc.stop()
        HELD.clear()
    assert lines[0].startswith("traced heap")
    grown = [line for line in lines[2:7] if "test_memtrace.py" in line]
    assert grown, lines  # this file's allocation is among the top sites
    assert float(grown[0].split()[0]) > 1500  # KiB
