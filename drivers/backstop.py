"""A reusable deadline for a loop that sets one thousands of times a second and almost never hits it.

`asyncio.timeout` schedules a timer when entered and cancels it when left: a TimerHandle and a push
onto the event loop's timer heap per use, and the cancelled handle stays in the heap until the loop
sweeps it, so every other timer (pymodbus schedules one per request) pays for a bigger heap. A Modbus
bus's poll cycles each need a backstop against a hung transaction (bench/modbus_poll.py: 5,000 cycles
a second), each lasting milliseconds against a deadline of seconds.

`Backstop` keeps one timer for many uses. When it fires it looks at the use in progress: past its
deadline, the task is cancelled and the use ends in TimeoutError, as with `asyncio.timeout`; not yet,
the timer is set again for that use's deadline; no use in progress, it lapses and the next use sets
it. With uses much shorter than their deadline it fires about once per deadline, whatever the rate.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

# The loop runs a timer when it is due within its clock's resolution: a timer that runs that much
# early must not read the deadline as not yet reached and set itself again for the same instant.
_EARLY = 0.001


class Backstop:
    """`with backstop(seconds):` in a task bounds the block like `async with asyncio.timeout(seconds)`.

    One use at a time (not re-entrant): the holder of a bus's lock, one poll cycle after another."""

    __slots__ = ("_cancelling", "_deadline", "_expired", "_handle", "_loop", "_seconds", "_task", "fires")

    def __init__(self) -> None:
        self._seconds = 0.0
        self._deadline = 0.0
        self._task: asyncio.Task[object] | None = None  # the task of the use in progress
        self._cancelling = 0
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None  # pending timer, or None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the pending timer
        self.fires = 0  # times the timer ran (tests: it stays far below the number of uses)

    def __call__(self, seconds: float) -> Backstop:
        self._seconds = seconds
        return self

    def __enter__(self) -> Backstop:
        if self._task is not None:
            raise RuntimeError("Backstop is already in use")
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Backstop must be used inside a task")
        self._task, self._cancelling, self._expired = task, task.cancelling(), False
        self._deadline = deadline = loop.time() + self._seconds
        handle = self._handle
        if handle is None or self._loop is not loop or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(deadline, self._fire, loop)
            self._loop = loop
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if self._expired and task is not None:
            self._expired = False
            # as asyncio.timeout: our cancel becomes TimeoutError unless the task was cancelled besides
            if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a timer of a loop this backstop has since left
            return
        self.fires += 1
        self._handle = None
        task = self._task
        if task is None or self._expired:
            return  # idle: the next use sets the timer
        if loop.time() >= self._deadline - _EARLY:
            self._expired = True
            task.cancel()
        else:
            self._handle = loop.call_at(self._deadline, self._fire, loop)

    def close(self) -> None:
        """Cancel the pending timer (the owner is closing)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
