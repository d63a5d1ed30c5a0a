"""Injected time. Rules, escalation and KPIs read a Clock so tests drive time instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall time in seconds since the epoch (UTC) and a monotonic time for durations."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 0.0

    def now(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a ManualClock only moves forward; use step_wall for NTP steps")
        self._wall += seconds
        self._mono += seconds

    def step_wall(self, seconds: float) -> None:
        """An NTP step: wall time jumps, monotonic time does not."""
        self._wall += seconds
