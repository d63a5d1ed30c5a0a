"""Incidents: what operators handle. Alarm transitions become incidents (dedup while not resolved)."""

from gateway.incidents.feed import IncidentFeed
from gateway.incidents.manager import (
    Grouping,
    IncidentChange,
    IncidentError,
    IncidentManager,
    alarm_state,
)
from gateway.incidents.service import IncidentService

__all__ = [
    "Grouping",
    "IncidentChange",
    "IncidentError",
    "IncidentFeed",
    "IncidentManager",
    "IncidentService",
    "alarm_state",
]
