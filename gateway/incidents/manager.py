"""Incident lifecycle in memory: open → acknowledged → resolved → closed, with dedup by alarm key.

An alarm key (estate/device/rule) has at most one unresolved incident. A repeated or redelivered
activation of an active alarm changes nothing; a re-activation after return-to-normal is added to the
same incident's timeline and needs a fresh acknowledgement (ISA-18.2). Nothing here does I/O: the
service commits the changes this returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.alerts.rules import Transition
from gateway.model import AlarmState, Incident, IncidentState, TimelineEntry

UNRESOLVED = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)


class IncidentError(Exception):
    """An operator action that the incident's state does not allow."""


@dataclass
class IncidentChange:
    """An incident after a change, and the timeline entries the change added."""

    incident: Incident
    new: bool = False
    entries: list[TimelineEntry] = field(default_factory=list)


def alarm_state(incident: Incident) -> AlarmState:
    """ISA-18.2 state of the incident's alarm, derived from 'active' and 'acknowledged'."""
    acked = incident.state is not IncidentState.OPEN
    if incident.active:
        return AlarmState.ACK_ACTIVE if acked else AlarmState.UNACK_ACTIVE
    return AlarmState.NORMAL if acked else AlarmState.UNACK_RTN


class IncidentManager:
    """Unresolved incidents by alarm key and by id; decides what each transition or action changes."""

    def __init__(self) -> None:
        self.by_key: dict[str, Incident] = {}
        self.by_id: dict[int, Incident] = {}
        self.deduplicated = 0

    def load(self, incidents: list[Incident]) -> None:
        for incident in incidents:
            if incident.state in UNRESOLVED:
                self.by_key[incident.alarm_key] = incident
                self.by_id[incident.id] = incident

    def committed(self, changes: list[IncidentChange]) -> None:
        """After the store assigned ids to new incidents."""
        for change in changes:
            if change.incident.state in UNRESOLVED:
                self.by_id[change.incident.id] = change.incident
            else:
                self.by_id.pop(change.incident.id, None)

    def active_keys(self) -> list[str]:
        return [key for key, incident in self.by_key.items() if incident.active]

    def apply(self, transition: Transition) -> IncidentChange | None:
        incident = self.by_key.get(transition.key)
        if transition.active:
            if incident is not None and incident.active:
                self.deduplicated += 1
                return None
            if incident is not None:
                entry = TimelineEntry(transition.ts, "alarm_reactivated", detail=_detail(transition))
                incident.active, incident.updated_at = True, transition.ts
                incident.state = IncidentState.OPEN
                incident.timeline.append(entry)
                return IncidentChange(incident, entries=[entry])
            return self._open(transition)
        if incident is None or not incident.active:
            return None
        entry = TimelineEntry(transition.ts, "alarm_returned_to_normal", detail=_detail(transition))
        incident.active, incident.updated_at = False, transition.ts
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def _open(self, t: Transition) -> IncidentChange:
        entry = TimelineEntry(t.ts, "opened", detail=_detail(t))
        incident = Incident(
            id=0,
            estate=t.estate,
            device=t.device,
            rule=t.rule,
            alarm_key=t.key,
            priority=t.priority,
            state=IncidentState.OPEN,
            title=t.message_zh,
            opened_at=t.ts,
            updated_at=t.ts,
            active=True,
            title_en=t.message_en,
            timeline=[entry],
        )
        self.by_key[t.key] = incident
        return IncidentChange(incident, new=True, entries=[entry])

    def acknowledge(
        self, incident_id: int, user: str, ts: float, source: str = "", note: str = ""
    ) -> IncidentChange | None:
        """Ack an open incident. Acking an acknowledged one is a no-op (returns None)."""
        incident = self.by_id.get(incident_id)
        if incident is None:
            raise IncidentError(f"incident {incident_id} is not open")
        if incident.state is IncidentState.ACKNOWLEDGED:
            return None
        entry = TimelineEntry(
            ts, "acknowledged", user, {"source": source, "note": note} if note else {"source": source}
        )
        incident.state = IncidentState.ACKNOWLEDGED
        incident.acknowledged_at, incident.acknowledged_by, incident.updated_at = ts, user, ts
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])


def _detail(t: Transition) -> dict[str, object]:
    detail: dict[str, object] = {"rule": t.rule, "message_zh": t.message_zh, "message_en": t.message_en}
    if t.value is not None:
        detail["value"] = t.value
    return detail
