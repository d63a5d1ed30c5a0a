"""The core loop: ingest batches → rule engine → incident commit → acks.

An envelope's ack (a QoS 1 PUBACK) is sent only after the batch's incident changes are committed. If
the store fails, the same transitions are retried with backoff until they commit; meanwhile the loop
takes no new input, so drivers feel back-pressure instead of the gateway losing an alarm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from gateway.alerts import AlertEngine, Transition
from gateway.incidents import IncidentService
from gateway.ingest import Envelope, IngestQueue
from gateway.store import StoreError

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self, queue: IngestQueue, engine: AlertEngine, service: IncidentService, tick_interval: float = 0.1
    ) -> None:
        self.queue, self.engine, self.service = queue, engine, service
        self.tick_interval = tick_interval
        self.items = 0
        self.batches = 0
        self.store_failures = 0
        self.acks_failed = 0
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consume(), name="pipeline-consume")
            group.create_task(self._tick(), name="pipeline-tick")

    async def _consume(self) -> None:
        while True:
            batch = await self.queue.get_batch()  # cancelling here is safe: nothing taken yet
            await self._guarded(self.process(batch))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            await self._guarded(self._commit(self.engine.tick()))

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work that must not be cut in half by shutdown: a cancel stops the loop, not the commit."""
        task = asyncio.ensure_future(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        await asyncio.shield(task)

    async def process(self, batch: list[Envelope]) -> None:
        transitions: list[Transition] = []
        process = self.engine.process
        for envelope in batch:
            for item in envelope.items:
                transitions.extend(process(item))
            self.items += len(envelope.items)
        await self._commit(transitions)
        self.batches += 1
        for envelope in batch:
            if envelope.ack is not None:
                try:
                    envelope.ack()
                except Exception:  # a broken connection must not stop the core; the broker redelivers
                    self.acks_failed += 1
                    log.debug("ack failed", exc_info=True)

    async def _commit(self, transitions: list[Transition]) -> None:
        if not transitions:
            return
        delay = 0.05
        while True:
            try:
                await self.service.apply(transitions)
                return
            except StoreError as exc:
                self.store_failures += 1
                log.error(
                    "incident commit failed (%s); retrying %d transitions in %.2fs",
                    exc,
                    len(transitions),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def flush(self, deadline: float) -> int:
        """At shutdown: process what is already queued, within the deadline (monotonic seconds)."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=max(0.0, deadline - time.monotonic()))
        flushed = 0
        while self.queue.depth and time.monotonic() < deadline:
            batch = self.queue.drain_nowait()
            flushed += len(batch)
            await self.process(batch)
        return flushed
