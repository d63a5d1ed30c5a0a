"""The rule engine: readings and events in, alarm transitions out. Pure and synchronous.

Rules are indexed by (estate, device, point) and (estate, device, event kind), so a reading costs a dict
look-up plus the rules that watch that point, however many rules an estate has. Delays and windows run
on the injected clock's monotonic time (an NTP step cannot shorten an on-delay); timestamps and
schedules use wall time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.alerts.composite import CompositeInstance
from gateway.alerts.device import PointPlace
from gateway.alerts.instance import RuleInstance, Transition
from gateway.alerts.rules import compile_rules
from gateway.config.schema import RuleConfig
from gateway.model import Clock, DeviceEvent, Quality, Reading, Value

_NOWHERE = PointPlace()


@dataclass(frozen=True)
class DeviceInfo:
    """What the engine needs to know of a configured device."""

    estate: str
    device: str
    family: str
    location: str = ""
    heartbeat_timeout: float | None = None
    points: tuple[str, ...] = ()  # the profile's point names, for glob rules
    timezone: str = "Asia/Shanghai"
    gate_hours: str = "06:00-23:00"
    zone: str = ""
    holidays: tuple[str, ...] = ()  # ISO dates
    holiday_gate_hours: str | None = None
    # Points with their own label/zone (a fire panel's detectors across buildings); the rest are where
    # the device is. Left out of the hash: a device is identified by estate and id.
    places: Mapping[str, PointPlace] = field(default_factory=dict, hash=False)

    def location_of(self, point: str | None) -> str:
        """An alarm on a labelled point shows the point's label ("3号楼 2层 烟感"), else the device's."""
        return self.places.get(point or "", _NOWHERE).label or self.location

    def zone_of(self, point: str | None) -> str:
        """A point's own zone when it has one, so one panel's points correlate per building."""
        return self.places.get(point or "", _NOWHERE).zone or self.zone


@dataclass(slots=True)
class _DeviceState:
    info: DeviceInfo
    values: dict[str, Value] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)  # points whose last reading was not good
    last_seen: float = 0.0  # monotonic
    absent: bool = False


class AlertEngine:
    """Evaluates every rule instance against the latest values of its device."""

    def __init__(self, rules: Iterable[RuleConfig], devices: Iterable[DeviceInfo], clock: Clock) -> None:
        self.clock = clock
        device_list = list(devices)
        start = clock.monotonic()
        self._devices = {(d.estate, d.device): _DeviceState(d, last_seen=start) for d in device_list}
        self.instances = compile_rules(rules, device_list)
        self._by_point: dict[tuple[str, str, str], list[RuleInstance]] = {}
        self._by_event: dict[tuple[str, str, str], list[RuleInstance]] = {}
        for inst in self.instances:
            if isinstance(inst, CompositeInstance):
                for device, point in inst.pairs:
                    self._by_point.setdefault((inst.estate, device, point), []).append(inst)
                continue
            if inst.rule.kind in ("event", "count"):
                for kind in inst.rule.events or ():
                    self._by_event.setdefault((inst.estate, inst.device, kind), []).append(inst)
            for point in inst.watched:
                self._by_point.setdefault((inst.estate, inst.device, point), []).append(inst)
        self._by_key = {inst.key: inst for inst in self.instances}
        self._timed: set[RuleInstance] = set()
        self._windows_changed: set[RuleInstance] = set()
        self._watch_absence = [s for s in self._devices.values() if s.info.heartbeat_timeout]
        self.unknown_items = 0
        self.processed = 0

    # -- restart ---------------------------------------------------------------------------------
    def restore_active(self, keys: Iterable[str]) -> None:
        """Mark alarms the store says are active, so a restart neither re-raises nor forgets them."""
        for key in keys:
            inst = self._by_key.get(key)
            if inst is not None:
                inst.active = True

    def take_window_changes(self) -> dict[str, dict[str, list[float]]]:
        """Count windows changed since the last call, as wall times, for the store to keep.

        Committed with the same batch's incident changes, so a restart resumes "4 denials so far" exactly.
        """
        if not self._windows_changed:
            return {}
        offset = self.clock.now() - self.clock.monotonic()
        out = {
            inst.key: {group: [t + offset for t in times] for group, times in inst.hits.items()}
            for inst in self._windows_changed
        }
        self._windows_changed.clear()
        return out

    def restore_windows(self, windows: dict[str, dict[str, list[float]]]) -> None:
        """Count windows from the store (wall times) back into monotonic time."""
        offset = self.clock.now() - self.clock.monotonic()
        for key, groups in windows.items():
            inst = self._by_key.get(key)
            if inst is None or inst.rule.kind != "count":
                continue
            inst.hits = {group: deque(t - offset for t in times) for group, times in groups.items() if times}
            if inst.hits:
                self._timed.add(inst)

    # -- ownership (several gateway instances, gateway/cluster) ----------------------------------
    def watch_estates(self, estates: Collection[str] | None) -> None:
        """Only these estates' devices are watched for heartbeat absence (None: every estate): the
        others' devices are polled by another instance and would look silent here."""
        self._watch_absence = [
            s for s in self._devices.values()
            if s.info.heartbeat_timeout and (estates is None or s.info.estate in estates)
        ]  # fmt: skip

    def reset_estates(self, estates: Collection[str]) -> None:
        """Forget these estates' latest values and alarm states (they arrive from, or leave for, another
        instance: what matters is in the store, and restore_active/restore_windows bring it back)."""
        now = self.clock.monotonic()
        for (estate, _), state in self._devices.items():
            if estate in estates:
                state.values.clear()
                state.bad.clear()
                state.last_seen, state.absent = now, False
        for inst in self.instances:
            if inst.estate in estates:
                inst.reset()
                self._timed.discard(inst)
                self._windows_changed.discard(inst)

    # -- input -----------------------------------------------------------------------------------
    def process(self, item: Reading | DeviceEvent) -> list[Transition]:
        self.processed += 1
        state = self._devices.get((item.estate, item.device))
        if state is None:
            self.unknown_items += 1
            return []
        now = self.clock.monotonic()
        out: list[Transition] = []
        state.last_seen = now
        if state.absent and not (isinstance(item, Reading) and item.point == "online"):
            state.absent = False
            self._set(state, "online", True, now, out)
        if isinstance(item, Reading):
            if item.quality is Quality.GOOD:
                if item.point in state.bad:  # quality is a point too ("<point>.quality"), set on change
                    state.bad.discard(item.point)
                    self._set(state, f"{item.point}.quality", "good", now, out)
                self._set(state, item.point, item.value, now, out)
            else:
                state.values.pop(item.point, None)  # unknown, not frozen: rules on it hold
                if item.point not in state.bad:
                    state.bad.add(item.point)
                    self._set(state, f"{item.point}.quality", item.quality.value, now, out)
        else:
            self._event(state, item, now, out)
        return out

    def _set(self, state: _DeviceState, point: str, value: Value, now: float, out: list[Transition]) -> None:
        state.values[point] = value
        for inst in self._by_point.get((state.info.estate, state.info.device, point), ()):
            if isinstance(inst, CompositeInstance):
                inst.update(state.info.device, point, value, now)
            elif inst.rule.kind == "rate" and point == inst.point:
                inst.observe(value, now)
            self._evaluate(inst, state.values, now, out)

    def _event(self, state: _DeviceState, event: DeviceEvent, now: float, out: list[Transition]) -> None:
        wall = self.clock.now()
        for inst in self._by_event.get((event.estate, event.device, event.kind), ()):
            if not inst.in_schedule(wall) or not _attributes_match(inst.rule.match, event.attributes):
                continue
            if inst.rule.kind == "count":
                self._count(inst, state, event, now, wall, out)
                continue
            value: Value | None = event.attributes.get("card") or event.attributes.get("plate") or event.kind
            if not inst.active:
                out.append(inst.transition(True, wall, now, state.values, value))
            if inst.rule.clear_after > 0:
                inst.clear_due = now + inst.rule.clear_after
                self._timed.add(inst)
            elif inst.active:
                # Momentary: active and back to normal at once; the incident stays unacked (unack_rtn).
                out.append(inst.transition(False, wall, now, state.values, value))

    def _count(
        self, inst: RuleInstance, state: _DeviceState, event: DeviceEvent, now: float, wall: float,
        out: list[Transition],
    ) -> None:  # fmt: skip
        group = str(event.attributes.get(inst.rule.group_by, "")) if inst.rule.group_by else ""
        count = inst.hit(group, now)
        self._timed.add(inst)  # windows age out on ticks
        self._windows_changed.add(inst)
        if not inst.active and count >= (inst.rule.count or 0):
            shown = f"{count} × {event.kind}" + (f" @ {inst.rule.group_by} {group}" if group else "")
            out.append(inst.transition(True, wall, now, state.values, shown))

    # -- time ------------------------------------------------------------------------------------
    def tick(self) -> list[Transition]:
        """Fire due delays, event clears, window expiries and heartbeat absences; call it often."""
        now = self.clock.monotonic()
        out: list[Transition] = []
        for state in self._watch_absence:
            timeout = state.info.heartbeat_timeout
            if timeout and not state.absent and now - state.last_seen > timeout:
                state.absent = True
                self._set(state, "online", False, now, out)
        for inst in list(self._timed):
            device = self._devices.get((inst.estate, inst.device))  # None for estate/zone-wide rules
            if inst.rule.kind == "count" and device is not None:
                self._tick_count(inst, device, now, out)
            elif inst.clear_due is not None:
                if now >= inst.clear_due:
                    inst.clear_due = None
                    self._timed.discard(inst)
                    if inst.active:
                        out.append(inst.transition(False, self.clock.now(), now, {}))
            else:
                self._evaluate(inst, device.values if device is not None else {}, now, out)
        return out

    def _tick_count(self, inst: RuleInstance, state: _DeviceState, now: float, out: list[Transition]) -> None:
        before = sum(len(times) for times in inst.hits.values())
        largest = inst.expire(now)
        if sum(len(times) for times in inst.hits.values()) != before:
            self._windows_changed.add(inst)
        if not inst.hits:
            self._timed.discard(inst)
        if inst.active and largest < (inst.rule.count or 0):
            out.append(inst.transition(False, self.clock.now(), now, state.values, f"{largest}"))

    def _evaluate(
        self, inst: RuleInstance, values: dict[str, Value], now: float, out: list[Transition]
    ) -> None:
        if inst.rule.kind in ("event", "count"):
            return
        raising = not inst.active  # the transition this evaluation could make
        wall = self.clock.now()
        if inst.condition(values, wall) is not raising:  # opposite condition, or hold (None)
            inst.pending_since = None
            self._timed.discard(inst)
            if inst.rule.schedule != "always" or inst.rule.kind == "rate":
                self._timed.add(inst)  # schedules and trends change without new input
            return
        delay = inst.rule.on_delay if raising else inst.rule.off_delay
        if delay > 0 and not (not raising and inst.suppressed):
            if inst.pending_since is None:
                inst.pending_since = now
            if now - inst.pending_since < delay:
                self._timed.add(inst)
                return
        self._timed.discard(inst)
        shown = inst.shown() if isinstance(inst, CompositeInstance) else None
        out.append(inst.transition(raising, wall, now, values, shown))

    def online(self, estate: str, device: str) -> bool | None:
        """The core's view: explicit 'online' readings, heartbeat absence; None until first heard of."""
        state = self._devices.get((estate, device))
        if state is None:
            return None
        online = state.values.get("online")
        if isinstance(online, bool):
            return online
        return True if state.values else None

    @property
    def rule_count(self) -> int:
        return len(self.instances)


def _attributes_match(
    match: dict[str, list[str | float | int | bool]] | None, attributes: dict[str, Any]
) -> bool:
    return match is None or all(attributes.get(name) in allowed for name, allowed in match.items())
