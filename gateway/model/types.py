"""Readings, events, alarms and incidents (DESIGN §3).

Readings and events are slotted dataclasses: they are created once per device sample on the hot path.
Timestamps are UTC; `ts_ns` is integer nanoseconds so the InfluxDB sink writes them without rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Value = float | int | bool | str


class Family(StrEnum):
    ACCESS_GATE = "access_gate"
    PLATE_BARRIER = "plate_barrier"
    FIRE_PANEL = "fire_panel"
    SEPTIC_PRESSURE = "septic_pressure"
    GENERATOR = "generator"
    LOCAL_OUTPUT = "local_output"  # on-site siren / strobe / PA relays (issue 11): not in DESIGN §3


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"
    UNCERTAIN = "uncertain"
    STALE = "stale"


class Source(StrEnum):
    MQTT = "mqtt"
    MODBUS = "modbus"
    DERIVED = "derived"
    HTTP = "http"  # pushed by the device (ANPR cameras): not in DESIGN §3, which predates push cameras


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most urgent; used for sorting boards."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}


class AlarmState(StrEnum):
    """ISA-18.2 alarm states."""

    NORMAL = "normal"
    UNACK_ACTIVE = "unack_active"
    ACK_ACTIVE = "ack_active"
    UNACK_RTN = "unack_rtn"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class IncidentState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(slots=True, frozen=True, init=False)
class Reading:
    """One sampled value of one point of one device.

    The most made object of the hot path (every decoded value of every poll and message), so its
    `__init__` is written out: a frozen dataclass's generated one calls `object.__setattr__` per field
    (0.62 µs a reading); the slots' own setters take half that. Frozen all the same: `r.value = 1`
    raises FrozenInstanceError."""

    ts_ns: int
    estate: str
    device: str
    point: str
    value: Value
    unit: str = ""
    quality: Quality = Quality.GOOD
    source: Source = Source.MODBUS

    def __init__(
        self,
        ts_ns: int,
        estate: str,
        device: str,
        point: str,
        value: Value,
        unit: str = "",
        quality: Quality = Quality.GOOD,
        source: Source = Source.MODBUS,
    ) -> None:
        _set_ts_ns(self, ts_ns)
        _set_estate(self, estate)
        _set_device(self, device)
        _set_point(self, point)
        _set_value(self, value)
        _set_unit(self, unit)
        _set_quality(self, quality)
        _set_source(self, source)


# the slots' descriptors: setting through them skips the frozen class's __setattr__ (which raises)
_set_ts_ns = vars(Reading)["ts_ns"].__set__
_set_estate = vars(Reading)["estate"].__set__
_set_device = vars(Reading)["device"].__set__
_set_point = vars(Reading)["point"].__set__
_set_value = vars(Reading)["value"].__set__
_set_unit = vars(Reading)["unit"].__set__
_set_quality = vars(Reading)["quality"].__set__
_set_source = vars(Reading)["source"].__set__


@dataclass(slots=True, frozen=True)
class DeviceEvent:
    """A discrete happening at a device (card granted, door forced, plate read, fire alarm...)."""

    ts_ns: int
    estate: str
    device: str
    kind: str
    attributes: dict[str, Any] = field(default_factory=dict)
    source: Source = Source.MQTT


@dataclass(slots=True)
class TimelineEntry:
    """One line of an incident's audit trail: who did what, when, from where."""

    ts: float
    action: str
    actor: str = "system"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Alarm:
    """One rule on one device/point, with its ISA-18.2 state."""

    key: str  # "{estate}/{device}/{rule}": the dedup key
    estate: str
    device: str
    rule: str
    priority: Priority
    state: AlarmState
    message: str
    since: float
    value: Value | None = None


@dataclass(slots=True)
class Incident:
    """What an operator handles: one or more alarms, a lifecycle, and a timeline."""

    id: int
    estate: str
    device: str
    rule: str
    alarm_key: str
    priority: Priority
    state: IncidentState
    title: str
    opened_at: float
    updated_at: float
    title_en: str = ""
    active: bool = True
    escalation_level: int = 0
    assignee: str | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    latched: bool = False  # condition gone, held active until acknowledged (latching alarm)
    chattering: bool = False  # flagged once by chattering detection (ISA-18.2)
    shelved_until: float | None = None  # shelved by an operator until this wall time
    zone: str = ""
    cause: str | None = None  # at resolve: real | false_alarm | test | fault
    first_out: bool = False  # the first fire alarm of its estate's sequence (首警)
    # Member alarms (correlated into this incident) by alarm key: "active" | "latched" | "normal".
    members: dict[str, str] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)


Item = Reading | DeviceEvent


@dataclass(slots=True)
class Envelope:
    """What one driver delivery produced (one MQTT message, one Modbus poll), with an optional ack.

    The core calls `ack` only after the delivery's effects are committed (QoS 1 at-least-once).
    """

    items: Sequence[Item]
    ack: Callable[[], None] | None = None


@dataclass(frozen=True)
class OutOfService:
    """A device taken out of service (maintenance): its alarms are held, not annunciated (ISA-18.2)."""

    estate: str
    device: str
    since: float
    actor: str
    reason: str
    until: float | None = None


@dataclass(frozen=True)
class VisitorPass:
    """A visitor's vehicle pass registered at the gatehouse: valid from/until (epoch s), by whom."""

    id: int | None
    estate: str
    plate: str
    label: str
    valid_from: float
    valid_until: float
    created_by: str
    created_at: float


@dataclass(frozen=True)
class EscalationStep:
    """A due notification step of an incident's escalation ladder: a row in the store, not a sleep."""

    id: int | None
    incident_id: int
    policy: str
    step: int  # index into the policy's steps
    repeat: int  # 0 for the step itself, 1.. for re-notifications
    due_at: float  # epoch s
    hold_until: float | None = None  # held back (flood grouping, quiet hours) until then


@dataclass(frozen=True)
class AuditEntry:
    """One state-changing request: who, when, from where, what, on which target, and how it ended."""

    ts: float
    actor: str
    source: str
    action: str
    estate: str
    target: str
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)
