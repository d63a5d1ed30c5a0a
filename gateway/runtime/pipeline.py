"""The core loop: ingest batches → rule engine → incident commit → acks.

An envelope's ack (a QoS 1 PUBACK) is sent only after the batch's incident changes are committed. If
the store fails, the same transitions are retried with backoff until they commit; meanwhile the loop
takes no new input, so drivers feel back-pressure instead of the gateway losing an alarm.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Protocol

from gateway.alerts import AlertEngine, Transition
from gateway.incidents import IncidentService
from gateway.ingest import Envelope, IngestQueue, Item
from gateway.store import StoreError

log = logging.getLogger(__name__)
# The store commits in its own thread while ingest keeps this loop busy. With CPython's default 5 ms GIL
# switch interval every GIL hand-off inside a commit (sqlite3 releases it around each statement) could
# wait 5 ms: a commit of a few statements took 10-30 ms at half the maximum ingest rate, and an alarm
# reached the live feed that much later (issue 9). 1 ms bounds the wait; the cost is only paid while two
# threads contend.
GIL_SWITCH_INTERVAL = 0.001


class Observer(Protocol):
    """A downstream consumer of the core's input and output (metrics sink, KPI engine, recent readings).

    Called after each batch's changes are committed, in order; it must return quickly and never raise
    for bad data (it enqueues or counts). The core never waits for it beyond the call itself."""

    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None: ...


class Pipeline:
    def __init__(
        self,
        queue: IngestQueue,
        engine: AlertEngine,
        service: IncidentService,
        tick_interval: float = 0.1,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.queue, self.engine, self.service = queue, engine, service
        self.observers: list[Observer] = list(observers)
        self.tick_interval = tick_interval
        self.items = 0
        self.batches = 0
        self.store_failures = 0
        self.acks_failed = 0
        self.core_errors = 0  # items, batches or ticks that raised: bugs, visible in /health
        self._stopping = False
        self._idle: set[str] = set()  # loops waiting for input: the only ones shutdown may cancel
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Run the consume and tick loops until `stop()`."""
        self._stopping = False
        if sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        self._tasks = {
            "consume": asyncio.create_task(self._consume(), name="pipeline-consume"),
            "tick": asyncio.create_task(self._tick(), name="pipeline-tick"),
        }
        done = await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for result in done:
            if isinstance(result, Exception):
                raise result

    async def stop(self, within: float) -> None:
        """Let each loop finish the batch or commit it is in, then end it; a commit is not cut in half
        unless it is still retrying (store down) after `within` seconds: then it is cancelled, its
        deliveries stay unacked and the broker redelivers them on the next start."""
        self._stopping = True
        for name, task in self._tasks.items():
            if name in self._idle:
                task.cancel()  # waiting for input: nothing taken, safe to cancel
        tasks = list(self._tasks.values())
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, within)) if tasks else (set(), set())
        if pending:
            log.error(
                "pipeline still committing after %.1fs; cancelling (unacked input will be redelivered)",
                within,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _consume(self) -> None:
        while not self._stopping:
            self._idle.add("consume")
            batch = await self.queue.get_batch()
            self._idle.discard("consume")  # no await between taking the batch and this line
            try:
                await self.process(batch)
            except Exception:  # a bug must not stop alarm processing; the batch stays unacked
                self.core_errors += 1
                log.exception(
                    "alert core: batch of %d deliveries failed; continuing with the next", len(batch)
                )

    async def _tick(self) -> None:
        while not self._stopping:
            self._idle.add("tick")
            await asyncio.sleep(self.tick_interval)
            self._idle.discard("tick")
            try:
                transitions = self.engine.tick()
                await self._commit(transitions, self.engine.take_window_changes())
                self._tell((), transitions)
                await self.service.expire_shelves()
            except Exception:
                self.core_errors += 1
                log.exception("alert core: timer tick failed; trying again at the next tick")

    async def process(self, batch: list[Envelope]) -> None:
        transitions: list[Transition] = []
        process = self.engine.process
        for envelope in batch:
            for item in envelope.items:
                try:
                    transitions.extend(process(item))
                except Exception:  # one poisoned item costs that item, not the batch or the core
                    self.core_errors += 1
                    log.exception("alert core: could not evaluate %s/%s %r", item.estate, item.device, item)
            self.items += len(envelope.items)
        await self._commit(transitions, self.engine.take_window_changes())
        self.batches += 1
        if self.observers:
            self._tell([item for envelope in batch for item in envelope.items], transitions)
        for envelope in batch:
            if envelope.ack is not None:
                try:
                    envelope.ack()
                except Exception:  # a broken connection must not stop the core; the broker redelivers
                    self.acks_failed += 1
                    log.debug("ack failed", exc_info=True)

    def _tell(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        if not items and not transitions:
            return
        for observer in self.observers:
            try:
                observer.observe(items, transitions)
            except Exception:  # a consumer's bug costs its own view, never the core
                self.core_errors += 1
                log.exception("observer %r failed on a batch", observer)

    async def _commit(
        self, transitions: list[Transition], windows: dict[str, dict[str, list[float]]] | None = None
    ) -> None:
        if not transitions and not windows:
            return
        delay = 0.05
        while True:
            try:
                await self.service.apply(transitions, windows)
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
        flushed = 0
        while self.queue.depth and time.monotonic() < deadline:
            batch = self.queue.drain_nowait()
            flushed += len(batch)
            await self.process(batch)
        return flushed
