"""Request and response models of the API (OpenAPI is generated from these)."""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.incidents import alarm_state
from gateway.model import Incident, IncidentState, Priority


class TimelineOut(BaseModel):
    ts: float
    time: str
    action: str
    actor: str
    detail: dict[str, Any]


class IncidentOut(BaseModel):
    id: int
    estate: str
    device: str
    rule: str
    priority: Priority
    state: IncidentState
    alarm_state: str = Field(description="ISA-18.2 state of the incident's alarm")
    active: bool
    title: str = Field(description="zh-CN")
    title_en: str
    opened_at: float
    opened: str = Field(description="ISO 8601, UTC")
    updated_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    escalation_level: int
    latched: bool = Field(description="Condition gone, held active until acknowledged")
    chattering: bool
    shelved_until: float | None
    cause: str | None = Field(description="At resolve: real, false_alarm, test or fault")
    first_out: bool = Field(description="The first fire alarm of its estate's sequence (首警)")
    resolved_at: float | None
    assignee: str | None = Field(None, description="Who handles it (username), None when unassigned")
    timeline: list[TimelineOut] | None = None
    evidence: dict[str, list[dict[str, Any]]] | None = Field(
        None, description="Detail only: camera `links` around its alarms, plate `pictures` (gateway/evidence)"
    )


class CommandIn(BaseModel):
    command: str = Field(min_length=1, max_length=40, description="e.g. start, stop, auto, mute, reset")
    reason: str = Field(min_length=3, max_length=500, description="Why: recorded in the audit trail")


class CommandOut(BaseModel):
    command: str
    outcome: Literal["ok", "refused", "timeout", "failed"]
    detail: str


class OutOfServiceOut(BaseModel):
    since: float
    until: float | None
    actor: str
    reason: str


class OutOfServiceIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Why (maintenance work order, ...)")
    hours: float | None = Field(None, gt=0, le=720, description="Back in service by itself after this")


class DeviceOut(BaseModel):
    estate: str
    device: str
    family: str
    location: str
    online: bool | None
    last_seen: float | None
    readings: int
    events: int
    polls: int
    errors: dict[str, int]
    out_of_service: OutOfServiceOut | None = Field(None, description="Set while out of service")
    zone: str = Field("", description="Building/zone its alarms correlate on")


class PointOut(BaseModel):
    name: str
    label: str = Field(description="Where it is (site table), else the device's location")
    zone: str = Field(description="Building/zone its alarms correlate on")


class DeviceDetailOut(DeviceOut):
    points: list[PointOut] = Field(description="The profile's points, with their place (fire site tables)")


class AckIn(BaseModel):
    note: str = Field("", max_length=500)


class ResolveIn(BaseModel):
    cause: Literal["real", "false_alarm", "test", "fault"] = Field(description="What it turned out to be")
    note: str = Field("", max_length=1000)


class ShelveIn(BaseModel):
    minutes: float = Field(gt=0, le=24 * 60, description="ISA-18.2 shelving always expires (max 24 h)")
    reason: str = Field(min_length=1, max_length=500, description="Why: recorded in the timeline")


class AssignIn(BaseModel):
    assignee: str | None = Field(
        min_length=1, max_length=64, pattern=r"^\S(.*\S)?$", description="Username; null unassigns"
    )


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="Recorded in the timeline")


class BulkAckIn(BaseModel):
    """Either `ids`, or a filter (`estate` and/or `priority`) over the open incidents in your scope."""

    ids: list[int] | None = Field(None, min_length=1, max_length=1000)
    estate: str | None = None
    priority: Priority | None = None
    note: str = Field("", max_length=500)


class AckOutcomeOut(BaseModel):
    id: int
    outcome: str = Field(
        description="acknowledged, already_acknowledged, not_found, or the state forbidding it (resolved)"
    )


class BulkAckOut(BaseModel):
    acknowledged: int
    results: list[AckOutcomeOut]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def incident_out(incident: Incident, with_timeline: bool) -> IncidentOut:
    timeline = None
    if with_timeline:
        timeline = [
            TimelineOut(ts=e.ts, time=_iso(e.ts), action=e.action, actor=e.actor, detail=e.detail)
            for e in incident.timeline
        ]
    return IncidentOut(
        id=incident.id,
        estate=incident.estate,
        device=incident.device,
        rule=incident.rule,
        priority=incident.priority,
        state=incident.state,
        alarm_state=alarm_state(incident).value,
        active=incident.active,
        title=incident.title,
        title_en=incident.title_en,
        opened_at=incident.opened_at,
        opened=_iso(incident.opened_at),
        updated_at=incident.updated_at,
        acknowledged_at=incident.acknowledged_at,
        acknowledged_by=incident.acknowledged_by,
        escalation_level=incident.escalation_level,
        latched=incident.latched,
        chattering=incident.chattering,
        shelved_until=incident.shelved_until,
        cause=incident.cause,
        first_out=incident.first_out,
        resolved_at=incident.resolved_at,
        assignee=incident.assignee,
        timeline=timeline,
    )
