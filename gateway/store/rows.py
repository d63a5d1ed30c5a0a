"""Row mapping shared by the store engines: one place that turns an `incidents` row into an Incident."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.model import Incident, IncidentState, Priority


def incident_from_row(r: Mapping[str, Any]) -> Incident:
    """An Incident from a row of the `incidents` table by column name; members and timeline empty."""
    return Incident(
        id=int(r["id"]),
        estate=r["estate"],
        device=r["device"],
        rule=r["rule"],
        alarm_key=r["alarm_key"],
        priority=Priority(r["priority"]),
        state=IncidentState(r["state"]),
        title=r["title"],
        title_en=r["title_en"],
        opened_at=float(r["opened_at"]),
        updated_at=float(r["updated_at"]),
        active=bool(r["active"]),
        escalation_level=int(r["escalation_level"]),
        assignee=r["assignee"],
        acknowledged_at=r["acknowledged_at"],
        acknowledged_by=r["acknowledged_by"],
        resolved_at=r["resolved_at"],
        latched=bool(r["latched"]),
        chattering=bool(r["chattering"]),
        shelved_until=r["shelved_until"],
        zone=r["zone"],
        cause=r["cause"],
        first_out=bool(r["first_out"]),
    )
