"""Canonical types every stage agrees on (DESIGN §3). Nothing here does I/O."""

from gateway.model.clock import Clock, ManualClock, SystemClock
from gateway.model.types import (
    Alarm,
    AlarmState,
    AuditEntry,
    DeviceEvent,
    Envelope,
    Family,
    Incident,
    IncidentState,
    Item,
    OutOfService,
    Priority,
    Quality,
    Reading,
    Source,
    TimelineEntry,
    Value,
)

__all__ = [
    "Alarm",
    "AlarmState",
    "AuditEntry",
    "Clock",
    "DeviceEvent",
    "Envelope",
    "Family",
    "Incident",
    "IncidentState",
    "Item",
    "ManualClock",
    "OutOfService",
    "Priority",
    "Quality",
    "Reading",
    "Source",
    "SystemClock",
    "TimelineEntry",
    "Value",
]
