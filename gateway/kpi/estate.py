"""One estate's accumulation: the stream (readings, events, alarm transitions, incident changes) in,
day and hour buckets out. Pure: no I/O, time comes in as arguments (the engine reads its clock once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from gateway.alerts import DeviceInfo, Transition
from gateway.alerts.schedule import GateHours
from gateway.config.kpi import KpiConfig
from gateway.incidents import IncidentChange
from gateway.kpi.buckets import HOUR, SLOT, Bucket, EstateCalendar
from gateway.kpi.groups import Group
from gateway.kpi.runs import RunDetector
from gateway.model import DeviceEvent, Family, Incident, IncidentState, Priority, Quality, Reading

OFFLINE = "offline"
_PLATE_KINDS = frozenset({"plate_resident", "plate_visitor", "plate_unknown", "plate_blacklisted"})
_EVENT_COUNTERS = {"card_denied": "cards_denied", "door_forced": "doors_forced", "door_held": "doors_held"}
HELD_OPEN_RULE = "gate_door_held_open"  # door contact open too long: a held door without a door_held event


@dataclass(frozen=True)
class KpiEstate:
    """What the engine knows of an estate: names for the report, its timezone and gate hours, devices."""

    id: str
    name_zh: str = ""
    name_en: str = ""
    timezone: str = "Asia/Shanghai"
    gate_hours: str = "06:00-23:00"
    holidays: tuple[str, ...] = ()
    holiday_gate_hours: str | None = None
    devices: tuple[DeviceInfo, ...] = ()


@dataclass
class Pending:
    """An incident whose response is not yet counted (or is, but whose repair is not)."""

    opened_at: float
    priority: str
    acked: bool = False

    def to_list(self) -> list[object]:
        return [self.opened_at, self.priority, self.acked]


def fire_stems(info: DeviceInfo) -> list[str]:
    """A fire panel's detectors ("1-001" of "1-001.fire" / "1-001.state"); the panel itself if none."""
    stems = sorted({p.rsplit(".", 1)[0] for p in info.points if p.endswith((".fire", ".state"))})
    return stems or [""]


@dataclass
class EstateKpi:
    spec: KpiEstate
    config: KpiConfig
    offline_rules: frozenset[str]
    days: dict[date, Bucket] = field(default_factory=dict)
    hours: dict[int, Bucket] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)  # (kind, key) changed since the last save
    pending: dict[int, Pending] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = self.spec
        self.calendar = EstateCalendar(spec.timezone)
        self.gate_hours = GateHours(spec.gate_hours, spec.timezone, spec.holidays, spec.holiday_gate_hours)
        self.families = {d.device: d.family for d in spec.devices}
        self.stems = {d.device: fire_stems(d) for d in spec.devices if d.family == Family.FIRE_PANEL}
        self.fire_points = sum(len(s) for s in self.stems.values())
        self.equipment, self.fire = Group("equipment", self._spend), Group("fire", self._spend)
        self.septic, self.generator = Group("septic", self._spend), Group("generator", self._spend)
        self.groups = (self.equipment, self.fire, self.septic, self.generator)
        self.runs = RunDetector(self.config.test_run_minutes * 60)  # generator test runs (kpi/runs.py)
        self._heard: set[str] = set()
        cfg = self.config
        self._fault = frozenset(cfg.fault_rules)
        self._impairment = frozenset(cfg.fire_impairment_rules)
        self._septic = frozenset(cfg.septic_rules)
        self._fire_alarm = frozenset(cfg.fire_alarm_rules)
        self._repair = self._fault | self._impairment | self.offline_rules

    # -- buckets ---------------------------------------------------------------------------------
    def bucket(self, ts: float) -> tuple[Bucket, Bucket]:
        day, hour = self.calendar.day_of(ts), int(ts // HOUR) * HOUR
        self.dirty.add(("day", day.isoformat()))
        self.dirty.add(("hour", str(hour)))
        return self.days.setdefault(day, Bucket()), self.hours.setdefault(hour, Bucket())

    def count(self, ts: float, name: str, amount: float = 1.0) -> None:
        for bucket in self.bucket(ts):
            bucket.add(name, amount)

    def sample(self, ts: float, name: str, value: float) -> None:
        for bucket in self.bucket(ts):
            bucket.sample(name, value)

    def _spend(self, start: float, end: float, values: dict[str, float]) -> None:
        for seconds, day, hour in self.calendar.split(start, end):
            self.dirty.add(("day", day.isoformat()))
            self.dirty.add(("hour", str(hour)))
            for bucket in (self.days.setdefault(day, Bucket()), self.hours.setdefault(hour, Bucket())):
                for name, units in values.items():
                    bucket.add(name, units * seconds)

    def settle(self, now: float) -> None:
        """Close every open interval at `now`, and count generator runs that have reached their length."""
        for group in self.groups:
            group.settle(now)
        for _ in self.runs.settle(now):
            self.count(now, "generator_test_runs")

    # -- readings and events ---------------------------------------------------------------------
    def item(self, item: Reading | DeviceEvent, now: float) -> None:
        family = self.families.get(item.device)
        if family is None:
            return
        self._hear(item.device, family, now)
        if isinstance(item, DeviceEvent):
            self._event(item, now)
        elif item.quality is Quality.GOOD:
            self._reading(item, family, now)

    def _hear(self, device: str, family: str, now: float) -> None:
        if device in self._heard:
            return
        self._heard.add(device)
        self.equipment.know(device, now)
        if family == Family.SEPTIC_PRESSURE:
            self.septic.know(device, now)
        elif family == Family.GENERATOR:
            self.generator.know(device, now)
        elif family == Family.FIRE_PANEL:
            for stem in self.stems.get(device, [""]):
                self.fire.know(f"{device}/{stem}", now)

    def _reading(self, reading: Reading, family: str, now: float) -> None:
        point, value = reading.point, reading.value
        if point == "online" and isinstance(value, bool):
            self._offline(reading.device, not value, now)
        elif family != Family.GENERATOR:
            return
        elif point == "control_mode" and isinstance(value, str):
            self.generator.set(reading.device, "mode", value not in self.config.generator_ready_modes, now)
        elif point == "fuel_level" and isinstance(value, int | float) and not isinstance(value, bool):
            self.generator.set(reading.device, "fuel", value < self.config.generator_min_fuel_pct, now)
        elif (
            point == "engine_state"
            and isinstance(value, str)
            and self.runs.engine(reading.device, value in self.config.generator_running_states, now)
        ):
            self.count(now, "generator_test_runs")

    def _offline(self, device: str, offline: bool, now: float) -> None:
        family = self.families.get(device)
        self.equipment.set(device, OFFLINE, offline, now)
        if family == Family.SEPTIC_PRESSURE:
            self.septic.set(device, OFFLINE, offline, now)
        elif family == Family.GENERATOR:
            self.generator.set(device, OFFLINE, offline, now)
        elif family == Family.FIRE_PANEL:
            for stem in self.stems.get(device, [""]):
                self.fire.set(f"{device}/{stem}", OFFLINE, offline, now)

    def _event(self, event: DeviceEvent, now: float) -> None:
        kind, attrs = event.kind, event.attributes
        if kind in _EVENT_COUNTERS:
            self.count(now, _EVENT_COUNTERS[kind])
        elif kind == "card_granted":
            if not self.gate_hours.inside(event.ts_ns / 1e9):
                self.count(now, "after_hours_entries")
        elif kind in _PLATE_KINDS:
            direction = attrs.get("direction")
            if attrs.get("decision") == "open" and kind != "plate_blacklisted":
                if direction == "in":
                    self.count(now, "vehicle_entries")
                elif direction == "out":
                    self.count(now, "vehicle_exits")
            else:
                self.count(now, "plates_denied")
            if kind == "plate_unknown" and direction == "out":
                self.count(now, "unknown_plate_exits")

    # -- alarm transitions -----------------------------------------------------------------------
    def transition(self, t: Transition, now: float) -> None:
        family = self.families.get(t.device)
        if family is not None:
            self._hear(t.device, family, now)
        if t.active:
            self._alarm(t, now)
        self.alarm_state(t.device, t.rule, t.key, t.active, now)

    def alarm_state(self, device: str, rule: str, key: str, active: bool, now: float) -> None:
        """An alarm's condition began or ended: the groups it impairs change."""
        if rule in self.offline_rules:
            self._offline(device, active, now)
        if rule in self._fault and device in self.families:  # not "gateway", not an estate-wide duty
            self.equipment.set(device, key, active, now)
            if self.families.get(device) == Family.GENERATOR:
                self.generator.set(device, key, active, now)
        if rule in self._impairment:
            point = key.split("/", 3)[3] if key.count("/") >= 3 else ""
            stems = [point.rsplit(".", 1)[0]] if point else self.stems.get(device, [""])
            for stem in stems:
                self.fire.set(f"{device}/{stem}", key, active, now)
        if rule in self._septic:
            self.septic.set(device, key, active, now)

    def _alarm(self, t: Transition, now: float) -> None:
        slot = int(now // SLOT) * SLOT
        short = t.key.split("/", 1)[1] if "/" in t.key else t.key
        for bucket in self.bucket(now):
            bucket.alarm(short, slot, (t.message_zh, t.message_en))
            bucket.add("alarms")
            if t.chattering:
                bucket.add("chattering_alarms")
            if t.rule in self._fire_alarm:
                bucket.add("fire_alarms")
            if t.rule == HELD_OPEN_RULE:
                bucket.add("doors_held")

    # -- incidents -------------------------------------------------------------------------------
    def incident(self, change: IncidentChange) -> None:
        inc = change.incident
        actions = {entry.action for entry in change.entries}
        if change.new:
            self.count(inc.opened_at, "incidents")
            self.count(inc.opened_at, f"incidents_{inc.priority.value}")
            self.pending[inc.id] = Pending(inc.opened_at, inc.priority.value)
        if "acknowledged" in actions and inc.acknowledged_at is not None:
            pending = self.pending.setdefault(inc.id, Pending(inc.opened_at, inc.priority.value))
            if not pending.acked:
                pending.acked = True
                self._response(inc, inc.acknowledged_at, acknowledged=True)
        if "resolved" in actions and inc.resolved_at is not None and inc.state is not IncidentState.OPEN:
            gone = self.pending.pop(inc.id, None)
            acked = gone.acked if gone is not None else inc.acknowledged_at is not None
            if not acked:  # resolved without an ack: the resolution was the response
                self._response(inc, inc.resolved_at, acknowledged=False)
            self._resolved(inc, inc.resolved_at)

    def _response(self, inc: Incident, at: float, acknowledged: bool) -> None:
        delay = max(0.0, at - inc.opened_at)
        if acknowledged:
            self.sample(at, f"mtta:{inc.priority.value}", delay)
        self.count(at, "responses")
        if delay <= self.config.ack_sla_s.get(inc.priority, float("inf")):
            self.count(at, "responses_on_time")

    def _resolved(self, inc: Incident, at: float) -> None:
        duration = max(0.0, at - inc.opened_at)
        self.sample(at, f"mttr:{inc.priority.value}", duration)
        if inc.rule in self._repair or inc.cause == "fault":
            self.count(at, "repairs")
            on_time = duration <= self.config.repair_sla_s.get(inc.priority, float("inf"))
            if inc.priority in self.config.repair_same_day:
                on_time = on_time and self.calendar.day_of(at) == self.calendar.day_of(inc.opened_at)
            if on_time:
                self.count(at, "repairs_on_time")
        if inc.rule in self._fire_alarm:
            self.count(at, "fire_alarms_resolved")
            if inc.cause == "false_alarm":
                self.count(at, "fire_false_alarms")

    def overdue(self, now: float, start: float, end: float) -> int:
        """Unacknowledged incidents whose ack deadline passed inside [start, end) and before now: they
        count as late responses until someone acknowledges them."""
        n = 0
        for pending in self.pending.values():
            if pending.acked:
                continue
            deadline = pending.opened_at + self.config.ack_sla_s.get(Priority(pending.priority), float("inf"))
            n += start <= deadline < end and deadline < now
        return n

    def restore_active(self, keys: Iterable[tuple[str, str, str]], now: float) -> None:
        """Alarms still active at a restart (device, rule, key): their impairment goes on."""
        for device, rule, key in keys:
            self.alarm_state(device, rule, key, True, now)
