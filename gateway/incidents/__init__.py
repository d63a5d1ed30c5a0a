"""Incidents: what operators handle. Alarm transitions become incidents (dedup while not resolved)."""

from gateway.incidents.device_state import DeviceStateTracker
from gateway.incidents.feed import IncidentFeed
from gateway.incidents.live import DeviceState, IncidentUpdate, LiveFeed, LiveItem, LiveSubscription, Resync
from gateway.incidents.manager import (
    Grouping,
    IncidentChange,
    IncidentError,
    IncidentManager,
    alarm_state,
)
from gateway.incidents.service import IncidentService

__all__ = [
    "DeviceState",
    "DeviceStateTracker",
    "Grouping",
    "IncidentChange",
    "IncidentError",
    "IncidentFeed",
    "IncidentManager",
    "IncidentService",
    "IncidentUpdate",
    "LiveFeed",
    "LiveItem",
    "LiveSubscription",
    "Resync",
    "alarm_state",
]
