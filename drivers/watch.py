"""The latest value of each point of one device, and waiters for its next readings.

A command to an MQTT-bridged controller is proved by the device's own next state report (door_open
true), not by asking the alert engine: the ingress feeds every decoded Reading here, and a commander
waits on a subscription for the point it needs. Nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

from gateway.model import Item, Reading, Value

__all__ = ["PointWatch"]

WAITER_QUEUE = 32


class PointWatch:
    """Fed by the ingress (same event loop); read by commanders."""

    def __init__(self) -> None:
        self.latest: dict[str, Value] = {}
        self._waiters: dict[str, list[asyncio.Queue[Value]]] = {}
        self.dropped = 0

    def update(self, items: Sequence[Item]) -> None:
        for item in items:
            if not isinstance(item, Reading):
                continue
            self.latest[item.point] = item.value
            for queue in self._waiters.get(item.point, ()):
                try:
                    queue.put_nowait(item.value)
                except asyncio.QueueFull:
                    # A waiter reads within its confirm window; 32 unread values of one point in that
                    # time is a device flooding us, and the newest values are the ones to lose.
                    self.dropped += 1

    @contextlib.contextmanager
    def next_values(self, point: str) -> Iterator[asyncio.Queue[Value]]:
        """Values of `point` that arrive while the block runs (subscribe before sending the command)."""
        queue: asyncio.Queue[Value] = asyncio.Queue(WAITER_QUEUE)
        self._waiters.setdefault(point, []).append(queue)
        try:
            yield queue
        finally:
            waiters = self._waiters[point]
            waiters.remove(queue)
            if not waiters:
                del self._waiters[point]
