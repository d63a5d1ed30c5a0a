"""Device state for the live feed: online, active alarms and latest values per device, as changes.

A pipeline observer (gateway.runtime.pipeline.Observer): after each committed batch it updates the
devices the batch touched. A change of online state or of the active alarms is published at once; value
updates alone are coalesced to at most one item per device per `interval` seconds, the last of them sent
when the interval ends (a timer on the running loop), so a flood of readings cannot flood the feed.
Memory is bounded: configured devices only, at most `max_points` values each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gateway.alerts import DeviceInfo, Transition
from gateway.incidents.live import DeviceState, LiveFeed
from gateway.model import Clock, Item, Priority, Quality, Reading, Value

log = logging.getLogger(__name__)

__all__ = ["DeviceStateTracker"]

DeviceKey = tuple[str, str]


@dataclass
class _Device:
    values: dict[str, Value] = field(default_factory=dict)
    alarms: dict[str, Priority] = field(default_factory=dict)  # active alarm key → priority
    shown: tuple[bool | None, int, Priority | None] | None = None  # (online, alarms, priority) last sent
    sent_at: float = -1e18  # monotonic time of the last item
    dirty: bool = False  # values changed since the last item


class DeviceStateTracker:
    """Observes the core's batches and publishes DeviceState changes to the live feed."""

    def __init__(
        self,
        feed: LiveFeed,
        devices: Iterable[DeviceInfo],
        online: Callable[[str, str], bool | None],
        clock: Clock,
        interval: float = 1.0,
        max_points: int = 256,
    ) -> None:
        self.feed, self.online, self.clock = feed, online, clock
        self.interval, self.max_points = interval, max_points
        self._devices: dict[DeviceKey, _Device] = {(d.estate, d.device): _Device() for d in devices}
        self._due: dict[DeviceKey, float] = {}  # coalesced devices → monotonic time their item is due
        self._timer: asyncio.TimerHandle | None = None
        self.points_dropped = 0  # values not kept: the device has more than max_points points

    def restore_alarms(self, alarms: Iterable[tuple[str, str, str, Priority]]) -> None:
        """Alarms active at start (estate, device, alarm key, priority), e.g. the engine's restored ones."""
        for estate, device, key, priority in alarms:
            state = self._devices.get((estate, device))
            if state is not None:
                state.alarms[key] = priority

    def state(self, estate: str, device: str) -> DeviceState | None:
        """The device as the feed would show it now (None for an unknown device)."""
        state = self._devices.get((estate, device))
        return None if state is None else self._snapshot((estate, device), state)

    # -- the observer ----------------------------------------------------------------------------
    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        touched: set[DeviceKey] = set()
        for item in items:
            key = (item.estate, item.device)
            state = self._devices.get(key)
            if state is None:
                continue
            touched.add(key)
            if isinstance(item, Reading) and item.point != "online":
                self._value(state, item)
        for t in transitions:
            key = (t.estate, t.device)
            state = self._devices.get(key)
            if state is None:
                continue
            touched.add(key)
            if t.active:
                state.alarms[t.key] = t.priority
            else:
                state.alarms.pop(t.key, None)
        now = self.clock.monotonic()
        for key in touched:
            self._consider(key, self._devices[key], now)

    def _value(self, state: _Device, reading: Reading) -> None:
        if reading.quality is not Quality.GOOD:  # unknown, not frozen (as in the engine)
            state.dirty |= state.values.pop(reading.point, None) is not None
            return
        if reading.point not in state.values and len(state.values) >= self.max_points:
            self.points_dropped += 1
            return
        if state.values.get(reading.point) != reading.value:
            state.values[reading.point] = reading.value
            state.dirty = True

    def _consider(self, key: DeviceKey, state: _Device, now: float) -> None:
        if self._summary(key, state) != state.shown:
            self._send(key, state, now)  # online or alarms changed: at once
        elif state.dirty:
            if now - state.sent_at >= self.interval:
                self._send(key, state, now)
            elif key not in self._due:
                self._due[key] = state.sent_at + self.interval
                self._arm(now)

    def flush(self) -> int:
        """Publish the coalesced items that are due; returns how many. The timer calls it."""
        self.close()
        now = self.clock.monotonic()
        due = [key for key, at in self._due.items() if at <= now]
        for key in due:
            del self._due[key]
            state = self._devices[key]
            if state.dirty or self._summary(key, state) != state.shown:
                self._send(key, state, now)
        if self._due:
            self._arm(now)
        return len(due)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- internals -------------------------------------------------------------------------------
    def _arm(self, now: float) -> None:
        if self._timer is not None or not self._due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous test): the caller flushes
            return
        self._timer = loop.call_later(max(0.0, min(self._due.values()) - now), self.flush)

    def _summary(self, key: DeviceKey, state: _Device) -> tuple[bool | None, int, Priority | None]:
        top = min(state.alarms.values(), key=lambda p: p.rank, default=None)
        return self.online(*key), len(state.alarms), top

    def _snapshot(self, key: DeviceKey, state: _Device) -> DeviceState:
        online, alarms, top = self._summary(key, state)
        return DeviceState(key[0], key[1], online, alarms, top, dict(state.values), self.clock.now())

    def _send(self, key: DeviceKey, state: _Device, now: float) -> None:
        snapshot = self._snapshot(key, state)
        state.shown = (snapshot.online, snapshot.alarms, snapshot.priority)
        state.sent_at, state.dirty = now, False
        self._due.pop(key, None)
        self.feed.publish_device(snapshot)
