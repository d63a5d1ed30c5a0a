"""Incident lifecycle in memory: open → acknowledged → resolved → closed, with dedup by alarm key.

An alarm key (estate/device/rule) has at most one unresolved incident. A repeated or redelivered
activation of an active alarm changes nothing; a re-activation after return-to-normal is added to the
same incident's timeline and needs a fresh acknowledgement (ISA-18.2). Nothing here does I/O: the
service commits the changes this returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.alerts import Transition
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
    """ISA-18.2 state of the incident's alarm, derived from 'active', 'acknowledged' and shelving."""
    if incident.shelved_until is not None:
        return AlarmState.SHELVED
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
        self.chattering = 0

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
            change = self._activate(incident, transition)
        else:
            change = self._clear(incident, transition)
        if change is not None and transition.chattering:
            self.chattering += 1
            change.incident.chattering = True
            entry = TimelineEntry(transition.ts, "chattering_detected", detail={"rule": transition.rule})
            change.incident.timeline.append(entry)
            change.entries.append(entry)
        return change

    def _activate(self, incident: Incident | None, t: Transition) -> IncidentChange | None:
        if incident is None:
            return self._open(t)
        if incident.active:
            # Redelivered, repeated, or a latched alarm re-triggering: one incident, nothing new to say.
            self.deduplicated += 1
            incident.latched = False
            return None
        entry = TimelineEntry(t.ts, "alarm_reactivated", detail=_detail(t))
        incident.active, incident.updated_at = True, t.ts
        if incident.shelved_until is None:  # a shelved alarm does not ask for attention until unshelved
            incident.state = IncidentState.OPEN
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def _clear(self, incident: Incident | None, t: Transition) -> IncidentChange | None:
        if incident is None or not incident.active:
            return None
        if t.latch and incident.state is IncidentState.OPEN:
            # Latching (fire): the condition is gone, but the alarm stays until someone acknowledges it.
            if incident.latched:
                return None
            incident.latched, incident.updated_at = True, t.ts
            entry = TimelineEntry(t.ts, "condition_cleared_latched", detail=_detail(t))
        else:
            action = "alarm_suppressed" if t.reason == "suppressed" else "alarm_returned_to_normal"
            entry = TimelineEntry(t.ts, action, detail=_detail(t))
            incident.active, incident.latched, incident.updated_at = False, False, t.ts
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
        incident = self._unresolved(incident_id)
        if incident.state is IncidentState.ACKNOWLEDGED:
            return None
        detail = {"source": source, "note": note} if note else {"source": source}
        entries = [TimelineEntry(ts, "acknowledged", user, detail)]
        incident.state = IncidentState.ACKNOWLEDGED
        incident.acknowledged_at, incident.acknowledged_by, incident.updated_at = ts, user, ts
        if incident.latched:  # a latched alarm whose condition is gone returns to normal on ack
            incident.active = incident.latched = False
            entries.append(
                TimelineEntry(ts, "alarm_returned_to_normal", detail={"after": "latch acknowledged"})
            )
        incident.timeline.extend(entries)
        return IncidentChange(incident, entries=entries)

    def shelve(self, incident_id: int, user: str, ts: float, until: float, reason: str) -> IncidentChange:
        """ISA-18.2 shelving: hide the alarm from attention until `until` (wall time); audited."""
        incident = self._unresolved(incident_id)
        if until <= ts:
            raise IncidentError("shelving needs an expiry in the future")
        incident.shelved_until, incident.updated_at = until, ts
        entry = TimelineEntry(ts, "shelved", user, {"until": until, "reason": reason})
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def unshelve(self, incident_id: int, user: str, ts: float, reason: str = "") -> IncidentChange | None:
        incident = self._unresolved(incident_id)
        if incident.shelved_until is None:
            return None
        incident.shelved_until, incident.updated_at = None, ts
        if incident.active and incident.acknowledged_at is None:
            incident.state = IncidentState.OPEN
        entry = TimelineEntry(ts, "unshelved", user, {"reason": reason} if reason else {})
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def expire_shelves(self, ts: float) -> list[IncidentChange]:
        """Unshelve what has run out: a shelf never outlives its expiry, whoever forgot it."""
        expired = [i.id for i in self.by_id.values() if i.shelved_until is not None and i.shelved_until <= ts]
        return [c for c in (self.unshelve(i, "system", ts, "expired") for i in expired) if c is not None]

    def _unresolved(self, incident_id: int) -> Incident:
        incident = self.by_id.get(incident_id)
        if incident is None:
            raise IncidentError(f"incident {incident_id} is not open")
        return incident


def _detail(t: Transition) -> dict[str, object]:
    detail: dict[str, object] = {"rule": t.rule, "message_zh": t.message_zh, "message_en": t.message_en}
    if t.value is not None:
        detail["value"] = t.value
    return detail
