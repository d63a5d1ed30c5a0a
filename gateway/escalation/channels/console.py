"""The operator console's live feed: notifications fanned out to in-process subscribers.

Each subscriber (a console WebSocket, the API) has its own bounded queue; when it is full the oldest
notice is dropped and counted, so a stalled console never slows escalation (the incident feed's fan-out).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.escalation.channel_config import ConsoleChannelConfig
from gateway.escalation.channels.http import failed
from gateway.escalation.types import Delivery, Notification, Person
from gateway.incidents.feed import Fanout, Subscription

__all__ = ["ConsoleChannel", "Notice", "NoticeFeed", "NoticeSubscription"]


@dataclass(frozen=True)
class Notice:
    seq: int
    person_id: str
    notification: Notification


NoticeSubscription = Subscription[Notice]


class NoticeFeed(Fanout[Notice]):
    """Notices for the console; `publish` never waits."""

    what = "notices"

    def subscribe(self, maxsize: int = 100, hint: bool = False) -> NoticeSubscription:
        return super().subscribe(maxsize, hint)

    def publish(self, person_id: str, notification: Notification) -> int:
        """Hand the notice to every subscriber; returns how many got it."""
        self.seq += 1
        return self._deliver(Notice(self.seq, person_id, notification))


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
