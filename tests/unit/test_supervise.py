"""A crashed driver is restarted with exponential backoff, and the log says so."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from gateway.runtime.app import supervise


async def test_crashed_driver_restarts_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    starts: list[float] = []
    third_start = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def flaky() -> None:
        starts.append(loop.time())
        if len(starts) == 3:
            third_start.set()
        if len(starts) < 3:
            raise RuntimeError(f"boom {len(starts)}")
        await asyncio.sleep(3600)

    caplog.set_level(logging.ERROR)
    task = asyncio.create_task(supervise("modbus e1/gen-1", flaky, max_backoff=0.4))
    try:
        async with asyncio.timeout(5):
            await third_start.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.35 and gaps[1] >= 0.35  # backoff 1 s capped at 0.4 s here
    crashes = [r for r in caplog.records if "crashed; restarting" in r.getMessage()]
    assert len(crashes) == 2 and "modbus e1/gen-1" in crashes[0].getMessage()
    assert crashes[0].exc_info is not None
