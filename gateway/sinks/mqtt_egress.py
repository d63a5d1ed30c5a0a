"""Incident snapshots on MQTT (DESIGN §4): `estate-gateway/{estate}/incident/{id}`, QoS 1, after the commit.

For BMS panels, estate apps and other gateways that follow incidents without the HTTP API. A message is
the incident's state after a change plus what that change added to its timeline (`events`: opened,
alarm_reactivated, alarm_returned_to_normal, acknowledged, ...). A commit's snapshots are offered first
and written together (one system call). While a snapshot waits in the outbox, a newer one of the same
incident takes its place and carries the waiting one's events before its own, so a subscriber sees every
timeline event once and in order, even where states were coalesced (two changes of one incident in the
same commit, an alarm and its clear in one batch of a drain, or while the broker is away). A snapshot
is retained while its incident is unresolved, so a subscriber that arrives later gets every open
incident at once; when the incident is resolved or closed, its last snapshot goes out not retained and
the retained one is cleared (a zero-length retained message), so the broker keeps open incidents only.

The messages go through the egress connection's `Outbox`: keyed by topic, so while the broker is away
only each incident's latest message waits, with the events of every change since its last message went
out (the full timeline is the API's). At start (in a cluster: when an instance adopts estates) the
unresolved incidents are published again (no events), so the broker's retained copies follow changes
made while the gateway was down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from drivers.transports.mqtt_outbox import Outbox
from gateway.incidents import IncidentChange
from gateway.incidents.manager import UNRESOLVED, alarm_state
from gateway.model import Incident, TimelineEntry

__all__ = ["PREFIX", "IncidentEgress", "incident_snapshot"]

PREFIX = "estate-gateway"


def incident_snapshot(
    incident: Incident, gateway_id: str, events: Sequence[TimelineEntry] = ()
) -> dict[str, Any]:
    return {
        "id": incident.id,
        "gateway": gateway_id,
        "estate": incident.estate,
        "device": incident.device,
        "rule": incident.rule,
        "zone": incident.zone,
        "priority": incident.priority.value,
        "state": incident.state.value,
        "alarm_state": alarm_state(incident).value,
        "active": incident.active,
        "alarms": len(incident.members) or 1,
        "title": incident.title,
        "title_en": incident.title_en,
        "opened_at": incident.opened_at,
        "updated_at": incident.updated_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "assignee": incident.assignee,
        "escalation_level": incident.escalation_level,
        "latched": incident.latched,
        "chattering": incident.chattering,
        "shelved_until": incident.shelved_until,
        "first_out": incident.first_out,
        "resolved_at": incident.resolved_at,
        "cause": incident.cause,
        "events": [{"action": e.action, "ts": e.ts, "actor": e.actor, "detail": e.detail} for e in events],
    }


class IncidentEgress:
    """An IncidentService listener: each committed change becomes its incident's snapshot on MQTT."""

    def __init__(self, outbox: Outbox, gateway_id: str) -> None:
        self.outbox, self.gateway_id = outbox, gateway_id
        self.offered = 0

    def __call__(self, changes: list[IncidentChange]) -> None:
        for change in changes:
            self.offer(change.incident, change.entries, send=False)
        self.outbox.send()  # a commit's snapshots in one write

    def republish(self, incidents: Iterable[Incident]) -> None:
        for incident in incidents:
            self.offer(incident, send=False)
        self.outbox.send()

    def offer(self, incident: Incident, events: Sequence[TimelineEntry] = (), send: bool = True) -> None:
        outbox = self.outbox
        topic = f"{PREFIX}/{incident.estate}/incident/{incident.id}"
        earlier = outbox.waiting(topic)  # the snapshot this one replaces, not sent yet: keep its events
        if earlier:
            events = (*earlier, *events)
        body = orjson.dumps(incident_snapshot(incident, self.gateway_id, events))
        clear = topic + " clear"
        if incident.state in UNRESOLVED:
            outbox.withdraw(clear)  # reopened before its clear went out: keep the retained snapshot
            outbox.offer(topic, topic, body, True, events, send=send)
        else:
            outbox.offer(topic, topic, body, False, events, send=send)
            outbox.offer(clear, topic, b"", True, send=send)
        self.offered += 1
