"""drivers.backstop.Backstop: asyncio.timeout's behaviour with one timer for many uses."""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.backstop import Backstop


async def test_a_use_past_its_deadline_ends_in_timeout_error_and_the_task_goes_on() -> None:
    backstop = Backstop()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError), backstop(0.05):
        await asyncio.sleep(10)
    assert 0.04 <= time.monotonic() - t0 < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # not left half-cancelled
    await asyncio.sleep(0)  # the task can await again
    with backstop(1.0):  # and the backstop can be used again
        await asyncio.sleep(0)


async def test_many_short_uses_share_a_few_timer_runs() -> None:
    backstop, uses = Backstop(), 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        with backstop(0.05):
            await asyncio.sleep(0)
        uses += 1
    await asyncio.sleep(0.1)  # the last timer runs and lapses
    assert uses > 500
    assert backstop.fires <= 0.4 / 0.05 + 2  # about one run per deadline, not one per use


async def test_a_shorter_deadline_after_a_longer_one_is_kept() -> None:
    backstop = Backstop()
    with backstop(30.0):  # leaves a timer 30 s out
        await asyncio.sleep(0)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError), backstop(0.05):
        await asyncio.sleep(10)
    assert time.monotonic() - t0 < 1.0


async def test_a_timer_left_by_a_long_use_enforces_the_next_use() -> None:
    """The timer of the first use runs during the second, not yet due: it sets itself again for it."""
    backstop = Backstop()
    with backstop(0.05):
        await asyncio.sleep(0)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError), backstop(0.2):
        await asyncio.sleep(10)
    assert 0.19 <= time.monotonic() - t0 < 1.0
    assert backstop.fires == 2


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    backstop = Backstop()
    entered = asyncio.Event()

    async def use() -> None:
        with backstop(10.0):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(use())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with backstop(0.05):  # released for the next use
        await asyncio.sleep(0)


async def test_a_cancel_from_outside_during_expiry_stays_a_cancel() -> None:
    """As asyncio.timeout: when the task is also cancelled from outside, the cancel wins."""
    backstop = Backstop()

    async def use() -> None:
        with backstop(0.01):
            try:
                await asyncio.sleep(10)
            finally:
                await asyncio.sleep(0.05)  # cleanup under way when the outside cancel comes

    task = asyncio.create_task(use())
    await asyncio.sleep(0.03)  # the backstop has expired: cleanup running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_one_use_at_a_time() -> None:
    backstop = Backstop()
    with backstop(1.0), pytest.raises(RuntimeError, match="already in use"), backstop(1.0):
        pass


def test_a_backstop_outlives_its_event_loop() -> None:
    """Endpoints (and their backstop) may be used from one asyncio.run, then another."""
    backstop = Backstop()

    async def hang() -> None:
        with backstop(0.05):
            await asyncio.sleep(10)

    async def short() -> None:
        with backstop(30.0):
            await asyncio.sleep(0)

    asyncio.run(short())  # leaves a timer on a loop that is then closed
    with pytest.raises(TimeoutError):
        asyncio.run(hang())
