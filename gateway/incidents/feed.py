"""Live feed: committed incident changes fanned out to subscribers (console, API, demo printer).

Each subscriber has its own bounded queue; a slow subscriber loses its oldest items (counted) and never
slows the publisher. Every item carries a sequence number so a client can tell it missed some. The
fan-out itself is generic: the escalation console channel publishes its notices through the same one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.incidents.manager import IncidentChange

log = logging.getLogger(__name__)
T = TypeVar("T")


class Subscription(Generic[T]):
    def __init__(self, fanout: Fanout[T], maxsize: int, hint: bool = False) -> None:
        self._fanout = fanout
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.hint = hint  # only a wake-up: losing items is expected, not worth a warning

    async def get(self) -> T:
        return await self.queue.get()

    def close(self) -> None:
        self._fanout._subs.discard(self)


class Fanout(Generic[T]):
    """A bounded pub/sub: publishing never waits; a full subscriber drops its oldest item."""

    what = "items"  # for the log line

    def __init__(self) -> None:
        self._subs: set[Subscription[T]] = set()
        self.seq = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, maxsize: int = 1000, hint: bool = False) -> Subscription[T]:
        sub = Subscription(self, maxsize, hint)
        self._subs.add(sub)
        return sub

    def _deliver(self, item: T) -> int:
        """Hand an item to every subscriber; returns how many got it."""
        for sub in self._subs:
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
                if sub.dropped == 1 and not sub.hint:
                    log.warning("live-feed subscriber is too slow; dropping its oldest %s", self.what)
            sub.queue.put_nowait(item)
        return len(self._subs)


@dataclass(frozen=True)
class FeedItem:
    seq: int
    change: IncidentChange


class IncidentFeed(Fanout[FeedItem]):
    what = "changes"

    def publish(self, changes: list[IncidentChange]) -> None:
        for change in changes:
            self.seq += 1
            self._deliver(FeedItem(self.seq, change))
