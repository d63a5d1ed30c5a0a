"""The live feed: one ordered stream of incident changes and device-state changes, resumable.

Every item gets the next sequence number of this process (one sequence across both kinds) and is kept in
a replay ring of the last `ring_size` items. A client that reconnects with the `epoch` it saw and the last
`seq` it received is replayed exactly the items after that seq, then continues live: `attach()` snapshots
the ring and subscribes without an await in between, so nothing falls between the replay and the live
queue and nothing is sent twice. A client that is too far behind (the ring no longer holds seq + 1), or
comes from another process (epoch differs), is told to resync: refetch state over REST, then go on live.

Each subscriber has a bounded queue and a filter (its estate scope), applied when an item is published,
so out-of-scope items never take room. A subscriber whose queue overflows loses nothing silently: its
queue is replaced by a `Resync` marker followed by the newest item.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from gateway.incidents.manager import IncidentChange
from gateway.model import Incident, Priority, TimelineEntry, Value

log = logging.getLogger(__name__)

__all__ = ["DeviceState", "IncidentUpdate", "LiveFeed", "LiveItem", "LiveSubscription", "Resync"]


@dataclass(frozen=True)
class DeviceState:
    """A device as the live feed shows it: online, its active alarms, and the latest value per point."""

    estate: str
    device: str
    online: bool | None
    alarms: int
    priority: Priority | None  # the most urgent active alarm's, None without alarms
    values: dict[str, Value]
    ts: float  # wall time of the change


@dataclass(frozen=True)
class IncidentUpdate:
    """An incident as it was when the change was committed (a copy: the manager keeps mutating its own),
    without its timeline and member alarms (a flood's hundreds of members would be copied at every
    change); `entries` are the timeline entries this change added."""

    incident: Incident
    new: bool
    entries: tuple[TimelineEntry, ...]


@dataclass(eq=False)
class LiveItem:
    seq: int
    estate: str
    body: IncidentUpdate | DeviceState
    # The API layer's encoding of this item, made once and shared by every connection that sends it.
    wire: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Resync:
    """Items were lost (queue overflow): refetch state, then continue with the items after `seq`."""

    seq: int


class LiveSubscription:
    """A bounded queue of the items its filter accepts; see the module docstring for overflow."""

    def __init__(self, feed: LiveFeed, accepts: Callable[[LiveItem], bool], maxsize: int) -> None:
        self._feed, self._accepts, self.maxsize = feed, accepts, maxsize
        self._items: deque[LiveItem | Resync] = deque()
        self._ready = asyncio.Event()
        self.overflows = 0

    def _offer(self, item: LiveItem) -> None:
        if not self._accepts(item):
            return
        if len(self._items) >= self.maxsize:
            self._items.clear()
            self._items.append(Resync(item.seq - 1))
            self.overflows += 1
            if self.overflows == 1:
                log.warning("live-feed subscriber is too slow; it will be told to resync")
        self._items.append(item)
        self._ready.set()

    def pending(self) -> int:
        return len(self._items)

    async def get(self) -> LiveItem | Resync:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def get_nowait(self) -> LiveItem | Resync | None:
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        self._feed._subs.discard(self)


class LiveFeed:
    """The process's live stream (see module docstring). Publishing never waits and never raises."""

    def __init__(self, ring_size: int = 10_000, epoch: str | None = None) -> None:
        self.epoch = epoch or secrets.token_hex(8)
        self.seq = 0
        self._ring: deque[LiveItem] = deque(maxlen=max(1, ring_size))
        self._subs: set[LiveSubscription] = set()
        self.published = 0
        # The latest published state of each device: what a client that resyncs starts from.
        self.devices: dict[tuple[str, str], DeviceState] = {}

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def replay_items(self) -> int:
        """Items in the replay ring now; it holds at most `replay_capacity` (memory is bounded)."""
        return len(self._ring)

    @property
    def replay_capacity(self) -> int:
        return self._ring.maxlen or 0

    @property
    def oldest(self) -> int:
        """The oldest seq the ring can replay (seq + 1 when it is empty)."""
        return self._ring[0].seq if self._ring else self.seq + 1

    def publish_incidents(self, changes: list[IncidentChange]) -> None:
        """An IncidentService listener: committed changes, in commit order."""
        for change in changes:
            incident = change.incident
            snapshot = replace(incident, members={}, timeline=[])
            self._publish(incident.estate, IncidentUpdate(snapshot, change.new, tuple(change.entries)))

    def publish_device(self, state: DeviceState) -> None:
        self.devices[(state.estate, state.device)] = state
        self._publish(state.estate, state)

    def _publish(self, estate: str, body: IncidentUpdate | DeviceState) -> None:
        self.seq += 1
        item = LiveItem(self.seq, estate, body)
        self._ring.append(item)
        self.published += 1
        for sub in self._subs:
            sub._offer(item)

    def subscribe(
        self, accepts: Callable[[LiveItem], bool] = lambda _: True, maxsize: int = 1000
    ) -> LiveSubscription:
        sub = LiveSubscription(self, accepts, maxsize)
        self._subs.add(sub)
        return sub

    def attach(
        self,
        since: int | None,
        epoch: str | None,
        accepts: Callable[[LiveItem], bool] = lambda _: True,
        maxsize: int = 1000,
    ) -> tuple[LiveSubscription, list[LiveItem] | None]:
        """Subscribe, and the items to replay first: those after `since` that `accepts`, or None when the
        client must resync (no position given, another epoch, or the ring no longer holds since + 1).
        Synchronous on purpose: the replay ends exactly where the subscription's queue begins."""
        sub = self.subscribe(accepts, maxsize)
        return sub, self.replay(since, epoch, accepts)

    def replay(
        self, since: int | None, epoch: str | None, accepts: Callable[[LiveItem], bool] = lambda _: True
    ) -> list[LiveItem] | None:
        if since is None or epoch != self.epoch or since > self.seq or since + 1 < self.oldest:
            return None
        return [item for item in _after(self._ring, since) if accepts(item)]


def _after(ring: deque[LiveItem], since: int) -> Iterable[LiveItem]:
    """Items with seq > since; the ring is contiguous, so that is a slice from a known index."""
    if not ring:
        return ()
    return itertools.islice(ring, max(0, since + 1 - ring[0].seq), None)
