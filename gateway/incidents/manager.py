"""Incident lifecycle in memory: open → acknowledged → resolved → closed, over one or more member alarms.

Each member alarm (estate/device/rule) is `active`, `latched` or `normal` inside its incident; the
incident is active while any member is not normal. An alarm key has at most one unresolved incident:
a repeated or redelivered activation changes nothing; a re-activation after return-to-normal is added to
the same incident's timeline and needs a fresh acknowledgement (ISA-18.2).

A *new* alarm joins an existing incident instead of opening its own when
- it is correlated: same estate and zone as an unresolved incident opened within the correlation window;
- the estate is in flood: more than `flood_count` incidents opened within `flood_window` (ISA-18.2:
  10 per 10 min); then it joins the estate's flood incident, whose title carries the live count.
Critical alarms are never correlated (see `_correlate`). Nothing here does I/O: the service commits
the changes this returns.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from gateway.alerts import Transition
from gateway.model import AlarmState, Incident, IncidentState, OutOfService, Priority, TimelineEntry

UNRESOLVED = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)
ACTIVE, LATCHED, NORMAL = "active", "latched", "normal"
FLOOD_RULE = "alarm_flood"


class IncidentError(Exception):
    """An operator action that the incident's state does not allow."""


@dataclass
class IncidentChange:
    """An incident after a change, and the timeline entries the change added."""

    incident: Incident
    new: bool = False
    entries: list[TimelineEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Grouping:
    correlation_window: float = 120.0  # seconds; 0 switches correlation off
    flood_count: int = 10  # more than this many new incidents ...
    flood_window: float = 600.0  # ... in this many seconds, per estate, is a flood


def alarm_state(incident: Incident) -> AlarmState:
    """ISA-18.2 state of the incident's alarm(s), derived from activity, acknowledgement and shelving."""
    if incident.shelved_until is not None:
        return AlarmState.SHELVED
    acked = incident.state is not IncidentState.OPEN
    if incident.active:
        return AlarmState.ACK_ACTIVE if acked else AlarmState.UNACK_ACTIVE
    return AlarmState.NORMAL if acked else AlarmState.UNACK_RTN


def _refresh(incident: Incident) -> None:
    incident.active = any(state != NORMAL for state in incident.members.values())
    incident.latched = any(state == LATCHED for state in incident.members.values())


class IncidentManager:
    """Unresolved incidents by member alarm key and by id; decides what each transition or action changes."""

    def __init__(self, grouping: Grouping | None = None) -> None:
        self.grouping = grouping or Grouping()
        self.by_key: dict[str, Incident] = {}
        self.by_id: dict[int, Incident] = {}
        self._opened: dict[str, deque[float]] = {}  # estate → times incidents opened (flood detection)
        self._flood: dict[str, Incident] = {}  # estate → its unresolved flood incident
        self._first_out: dict[str, Incident] = {}  # estate → first-out incident of its fire sequence
        self.out_of_service: dict[tuple[str, str], OutOfService] = {}
        self._held: dict[str, Transition] = {}  # latest transition of each alarm of an out-of-service device
        self.held = 0
        self.deduplicated = 0
        self.chattering = 0
        self.correlated = 0
        self.flooded = 0

    def carry_over(self, old: IncidentManager) -> None:
        """Keep what the store does not hold when the view is rebuilt: transitions held for out-of-service
        devices, flood timing and the counters."""
        self._held = dict(old._held)
        self._opened = old._opened
        self.deduplicated, self.chattering = old.deduplicated, old.chattering
        self.correlated, self.flooded, self.held = old.correlated, old.flooded, old.held

    def load(self, incidents: list[Incident]) -> None:
        for incident in incidents:
            if incident.state in UNRESOLVED:
                self._index(incident)

    def _index(self, incident: Incident) -> None:
        if not incident.members:
            incident.members[incident.alarm_key] = ACTIVE if incident.active else NORMAL
        for key in incident.members:
            self.by_key[key] = incident
        if incident.id:
            self.by_id[incident.id] = incident
        if incident.rule == FLOOD_RULE:
            self._flood[incident.estate] = incident
        if incident.first_out:
            self._first_out[incident.estate] = incident

    def committed(self, changes: list[IncidentChange]) -> None:
        """After the store assigned ids to new incidents."""
        for change in changes:
            if change.incident.state in UNRESOLVED:
                self.by_id[change.incident.id] = change.incident
            else:
                self.by_id.pop(change.incident.id, None)

    def active_keys(self) -> list[str]:
        return [key for key, incident in self.by_key.items() if incident.members.get(key, NORMAL) != NORMAL]

    # -- alarm transitions -----------------------------------------------------------------------
    def apply(self, transition: Transition) -> IncidentChange | None:
        if (transition.estate, transition.device) in self.out_of_service:
            self._held[transition.key] = transition
            self.held += 1
            return None
        incident = self.by_key.get(transition.key)
        change = (
            self._activate(incident, transition) if transition.active else self._clear(incident, transition)
        )
        if change is not None and transition.chattering:
            self.chattering += 1
            change.incident.chattering = True
            entry = TimelineEntry(transition.ts, "chattering_detected", detail={"alarm": transition.key})
            change.incident.timeline.append(entry)
            change.entries.append(entry)
        return change

    def _activate(self, incident: Incident | None, t: Transition) -> IncidentChange | None:
        if incident is None:
            flood, created = self._flood_host(t)
            if flood is not None:
                change = self._join(flood, t)
                if created:  # the flood incident itself is new: insert it with all it has to say
                    change.new, change.entries = True, list(flood.timeline)
                return change
            host = self._correlate(t)
            return self._join(host, t) if host is not None else self._open(t)
        if incident.members.get(t.key) in (ACTIVE, LATCHED):
            # Redelivered, repeated, or a latched alarm re-triggering: one incident, nothing new to say.
            self.deduplicated += 1
            incident.members[t.key] = ACTIVE
            _refresh(incident)
            return None
        incident.members[t.key] = ACTIVE
        _refresh(incident)
        incident.updated_at = t.ts
        if incident.shelved_until is None:  # a shelved alarm does not ask for attention until unshelved
            incident.state = IncidentState.OPEN
        entry = TimelineEntry(t.ts, "alarm_reactivated", detail=_detail(t))
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def _clear(self, incident: Incident | None, t: Transition) -> IncidentChange | None:
        if incident is None or incident.members.get(t.key, NORMAL) == NORMAL:
            return None
        if t.latch and incident.state is IncidentState.OPEN:
            # Latching (fire): the condition is gone, but the alarm stays until someone acknowledges it.
            if incident.members[t.key] == LATCHED:
                return None
            incident.members[t.key] = LATCHED
            entry = TimelineEntry(t.ts, "condition_cleared_latched", detail=_detail(t))
        else:
            incident.members[t.key] = NORMAL
            action = "alarm_suppressed" if t.reason == "suppressed" else "alarm_returned_to_normal"
            entry = TimelineEntry(t.ts, action, detail=_detail(t))
        _refresh(incident)
        incident.updated_at = t.ts
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def _open(self, t: Transition) -> IncidentChange:
        entry = TimelineEntry(t.ts, "opened", detail=_detail(t))
        incident = Incident(
            id=0, estate=t.estate, device=t.device, rule=t.rule, alarm_key=t.key, priority=t.priority,
            state=IncidentState.OPEN, title=t.message_zh, opened_at=t.ts, updated_at=t.ts, active=True,
            title_en=t.message_en, zone=t.zone, members={t.key: ACTIVE}, timeline=[entry],
        )  # fmt: skip
        self.by_key[t.key] = incident
        self._opened.setdefault(t.estate, deque()).append(t.ts)
        if t.first_out:
            self._mark_first_out(incident, t)
        return IncidentChange(incident, new=True, entries=incident.timeline[:])

    def _mark_first_out(self, incident: Incident, t: Transition) -> None:
        """首警: the first fire alarm of the estate's sequence is kept; later ones point back to it."""
        first = self._first_out.get(t.estate)
        if first is None or first.state not in UNRESOLVED:
            incident.first_out = True
            self._first_out[t.estate] = incident
            incident.timeline.append(TimelineEntry(t.ts, "first_out", detail={"alarm": t.key}))
        else:
            detail = {"first_out_incident": first.id, "first_out_alarm": first.alarm_key}
            incident.timeline.append(TimelineEntry(t.ts, "fire_sequence", detail=detail))

    def _join(self, incident: Incident, t: Transition) -> IncidentChange:
        """Add a new alarm to an existing incident (correlated, or the estate's flood incident)."""
        incident.members[t.key] = ACTIVE
        self.by_key[t.key] = incident
        _refresh(incident)
        if _more_urgent(t.priority, incident.priority):
            incident.priority = t.priority
            if incident.rule != FLOOD_RULE:  # the board shows what matters most in it
                incident.title, incident.title_en = t.message_zh, t.message_en
        if incident.state is IncidentState.ACKNOWLEDGED and incident.shelved_until is None:
            incident.state = IncidentState.OPEN  # a new alarm needs its own acknowledgement
        incident.updated_at = t.ts
        action = "alarm_flooded" if incident.rule == FLOOD_RULE else "alarm_correlated"
        if incident.rule == FLOOD_RULE:
            self.flooded += 1
            count = len(incident.members)
            incident.title = f"报警泛滥：{incident.estate} {count} 条报警"
            incident.title_en = f"Alarm flood: {count} alarms at {incident.estate}"
        else:
            self.correlated += 1
        entry = TimelineEntry(
            t.ts, action, detail={**_detail(t), "alarm": t.key, "priority": t.priority.value}
        )
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def _correlate(self, t: Transition) -> Incident | None:
        """Critical alarms (fire, duress, fail-to-start) always get their own incident: they have their own
        escalation ladder and must never hide inside another incident, nor collect unrelated alarms."""
        window = self.grouping.correlation_window
        if window <= 0 or not t.zone or t.priority is Priority.CRITICAL:
            return None
        candidates = [
            incident for incident in self.by_key.values()  # includes incidents not yet committed
            if incident.estate == t.estate and incident.zone == t.zone and incident.rule != FLOOD_RULE
            and incident.priority is not Priority.CRITICAL
            and incident.state in UNRESOLVED and t.ts - incident.opened_at <= window
        ]  # fmt: skip
        return max(candidates, key=lambda incident: incident.opened_at, default=None)

    def _flood_host(self, t: Transition) -> tuple[Incident | None, bool]:
        """The estate's flood incident (and whether it was just created), or None when not in flood."""
        times = self._opened.setdefault(t.estate, deque())
        while times and t.ts - times[0] > self.grouping.flood_window:
            times.popleft()
        flood = self._flood.get(t.estate)
        if flood is not None and flood.state in UNRESOLVED:
            return flood, False
        if len(times) < self.grouping.flood_count:
            return None, False
        entry = TimelineEntry(t.ts, "flood_started", detail={"opened_in_window": len(times)})
        flood = Incident(
            id=0, estate=t.estate, device="*", rule=FLOOD_RULE, alarm_key=f"{t.estate}/*/{FLOOD_RULE}",
            priority=t.priority, state=IncidentState.OPEN, title="", opened_at=t.ts, updated_at=t.ts,
            active=True, timeline=[entry],
        )  # fmt: skip
        self._flood[t.estate] = flood
        return flood, True

    # -- operator actions ------------------------------------------------------------------------
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
        released = [key for key, state in incident.members.items() if state == LATCHED]
        for key in released:  # a latched alarm whose condition is gone returns to normal on ack
            incident.members[key] = NORMAL
            entries.append(
                TimelineEntry(ts, "alarm_returned_to_normal", detail={"alarm": key, "after": "ack"})
            )
        _refresh(incident)
        incident.timeline.extend(entries)
        return IncidentChange(incident, entries=entries)

    def acknowledge_many(
        self, incident_ids: list[int], user: str, ts: float, source: str = "", note: str = ""
    ) -> tuple[list[IncidentChange], dict[int, str]]:
        """Ack several incidents (a flood): the changes, and each id's outcome: `acknowledged`,
        `already_acknowledged`, or `not_open` (not an unresolved incident of this view)."""
        changes: list[IncidentChange] = []
        outcomes: dict[int, str] = {}
        for incident_id in incident_ids:
            if incident_id in outcomes:
                continue
            if incident_id not in self.by_id:
                outcomes[incident_id] = "not_open"
                continue
            change = self.acknowledge(incident_id, user, ts, source, note)
            outcomes[incident_id] = "already_acknowledged" if change is None else "acknowledged"
            if change is not None:
                changes.append(change)
        return changes, outcomes

    def resolve(self, incident_id: int, user: str, ts: float, cause: str, note: str = "") -> IncidentChange:
        """Resolved with a cause (real / false_alarm / test / fault). Its alarms are released: a later
        activation opens a new incident, as the operator has declared this one handled."""
        incident = self._unresolved(incident_id)
        incident.state, incident.resolved_at, incident.cause, incident.updated_at = (
            IncidentState.RESOLVED, ts, cause, ts,
        )  # fmt: skip
        incident.shelved_until = None
        detail: dict[str, object] = {"cause": cause, "still_active": incident.active}
        if note:
            detail["note"] = note
        entry = TimelineEntry(ts, "resolved", user, detail)
        incident.timeline.append(entry)
        for key in incident.members:
            if self.by_key.get(key) is incident:
                del self.by_key[key]
        if self._flood.get(incident.estate) is incident:
            del self._flood[incident.estate]
        if self._first_out.get(incident.estate) is incident:  # the sequence ends with its first-out
            del self._first_out[incident.estate]
        return IncidentChange(incident, entries=[entry])

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

    @staticmethod
    def assign(incident: Incident, user: str, ts: float, assignee: str | None) -> IncidentChange | None:
        """Assign to a user (None: unassign); any state but closed. Re-assigning to the same user is a
        no-op (returns None). Works on any incident object: resolved ones are not in this view."""
        if incident.state is IncidentState.CLOSED:
            raise IncidentError("a closed incident cannot be assigned")
        if incident.assignee == assignee:
            return None
        detail: dict[str, object] = {"assignee": assignee, "previous": incident.assignee}
        entry = TimelineEntry(ts, "assigned" if assignee else "unassigned", user, detail)
        incident.assignee, incident.updated_at = assignee, ts
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    @staticmethod
    def comment(incident: Incident, user: str, ts: float, text: str) -> IncidentChange:
        """A note in the timeline; any state but closed (a closed incident's record is final)."""
        if incident.state is IncidentState.CLOSED:
            raise IncidentError("a closed incident cannot be commented on")
        entry = TimelineEntry(ts, "commented", user, {"text": text})
        incident.updated_at = ts
        incident.timeline.append(entry)
        return IncidentChange(incident, entries=[entry])

    def take_out_of_service(self, record: OutOfService) -> None:
        self.out_of_service[(record.estate, record.device)] = record

    def return_to_service(self, estate: str, device: str, ts: float) -> list[IncidentChange]:
        """Back in service: alarms still active (held while out) are annunciated now."""
        if self.out_of_service.pop((estate, device), None) is None:
            return []
        prefix = f"{estate}/{device}/"
        held = [self._held.pop(key) for key in [k for k in self._held if k.startswith(prefix)]]
        changes = []
        for transition in held:
            if transition.active:
                change = self.apply(replace(transition, ts=ts))
                if change is not None:
                    changes.append(change)
        return changes

    def expired_out_of_service(self, ts: float) -> list[tuple[str, str]]:
        return [key for key, r in self.out_of_service.items() if r.until is not None and r.until <= ts]

    def _unresolved(self, incident_id: int) -> Incident:
        incident = self.by_id.get(incident_id)
        if incident is None:
            raise IncidentError(f"incident {incident_id} is not open")
        return incident


def _more_urgent(a: Priority, b: Priority) -> bool:
    return a.rank < b.rank


def _detail(t: Transition) -> dict[str, object]:
    detail: dict[str, object] = {"rule": t.rule, "message_zh": t.message_zh, "message_en": t.message_en}
    if t.value is not None:
        detail["value"] = t.value
    return detail
