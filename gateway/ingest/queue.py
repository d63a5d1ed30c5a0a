"""Bounded ingest queue. Drivers `await put()`: when the core falls behind, they wait (back-pressure)
instead of dropping. For MQTT that wait, plus manual acks, lets the broker hold the backlog.

Each Envelope may carry an `ack`: the core calls it only after the envelope's effects are committed
to the store, which is what makes QoS 1 delivery at-least-once end to end.
"""

from __future__ import annotations

import asyncio

from gateway.model import Envelope


class IngestQueue:
    """asyncio.Queue with a bound, batch reads and counters for /health."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize)
        self.maxsize = maxsize
        self.enqueued = 0
        self.high_water = 0

    async def put(self, envelope: Envelope) -> None:
        await self._queue.put(envelope)
        self.enqueued += 1
        depth = self._queue.qsize()
        self.high_water = max(self.high_water, depth)

    async def get_batch(self, max_envelopes: int = 512) -> list[Envelope]:
        """Wait for one envelope, then take whatever else is already waiting (up to the limit)."""
        batch = [await self._queue.get()]
        while len(batch) < max_envelopes:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    def drain_nowait(self) -> list[Envelope]:
        """Everything waiting now (used at shutdown to flush)."""
        out: list[Envelope] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return out

    @property
    def depth(self) -> int:
        return self._queue.qsize()
