"""Live feed: committed incident changes fanned out to subscribers (console, API, demo printer).

Each subscriber has its own bounded queue; a slow subscriber loses its oldest changes (counted) and
never slows the core. Every change carries a sequence number so a client can tell it missed some.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.incidents.manager import IncidentChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedItem:
    seq: int
    change: IncidentChange


class Subscription:
    def __init__(self, feed: IncidentFeed, maxsize: int) -> None:
        self._feed = feed
        self.queue: asyncio.Queue[FeedItem] = asyncio.Queue(maxsize)
        self.dropped = 0

    async def get(self) -> FeedItem:
        return await self.queue.get()

    def close(self) -> None:
        self._feed._subs.discard(self)


class IncidentFeed:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.seq = 0

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subs.add(sub)
        return sub

    def publish(self, changes: list[IncidentChange]) -> None:
        for change in changes:
            self.seq += 1
            item = FeedItem(self.seq, change)
            for sub in self._subs:
                if sub.queue.full():
                    sub.queue.get_nowait()
                    sub.dropped += 1
                    if sub.dropped == 1:
                        log.warning("live-feed subscriber is too slow; dropping its oldest changes")
                sub.queue.put_nowait(item)
