"""The operator console's live feed: notifications fanned out to in-process subscribers.

Each subscriber (a console WebSocket, the API) has its own bounded queue; when it is full the oldest
notice is dropped and counted, so a stalled console never slows escalation.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.escalation.channel_config import ConsoleChannelConfig
from gateway.escalation.channels.http import failed
from gateway.escalation.types import Delivery, Notification, Person

__all__ = ["ConsoleChannel", "Notice", "NoticeFeed", "NoticeSubscription"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    seq: int
    person_id: str
    notification: Notification


class NoticeSubscription:
    def __init__(self, feed: NoticeFeed, maxsize: int) -> None:
        self._feed = feed
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize)
        self.dropped = 0

    async def get(self) -> Notice:
        return await self.queue.get()

    def close(self) -> None:
        self._feed._subs.discard(self)


class NoticeFeed:
    """A tiny bounded pub/sub; publish never waits."""

    def __init__(self) -> None:
        self._subs: set[NoticeSubscription] = set()
        self.seq = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, maxsize: int = 100) -> NoticeSubscription:
        sub = NoticeSubscription(self, maxsize)
        self._subs.add(sub)
        return sub

    def publish(self, person_id: str, notification: Notification) -> int:
        """Hand the notice to every subscriber; returns how many got it."""
        self.seq += 1
        notice = Notice(self.seq, person_id, notification)
        for sub in self._subs:
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
                if sub.dropped == 1:
                    log.warning("console subscriber is too slow; dropping its oldest notices")
            sub.queue.put_nowait(notice)
        return len(self._subs)


class ConsoleChannel:
    def __init__(self, config: ConsoleChannelConfig, feed: NoticeFeed) -> None:
        self.name = config.name
        self.config = config
        self._feed = feed

    async def send(self, notification: Notification, person: Person) -> Delivery:
        reached = self._feed.publish(person.id, notification)
        if reached == 0 and self.config.require_subscriber:
            return failed("no console connected", retryable=False)
        return Delivery("sent", detail=f"{reached} console(s)")
