"""FastAPI application. Downstream of the store and the feed: it reads them and sends operator actions
through the IncidentService, the one path that changes incident state."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from drivers.stats import StatsRegistry
from gateway import __version__
from gateway.alerts import DeviceInfo
from gateway.api.auth import Principal, TokenAuth
from gateway.incidents import IncidentError, IncidentService, alarm_state
from gateway.model import Incident, IncidentState, Priority
from gateway.store import IncidentQuery


@dataclass
class ApiContext:
    service: IncidentService
    devices: list[DeviceInfo]
    stats: StatsRegistry
    auth: TokenAuth
    online: Callable[[str, str], bool | None] = field(default=lambda estate, device: None)
    health: Callable[[], dict[str, Any]] = field(default=lambda: {})
    started: float = field(default_factory=time.time)


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
    timeline: list[TimelineOut] | None = None


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


class AckIn(BaseModel):
    note: str = Field("", max_length=500)


class ShelveIn(BaseModel):
    minutes: float = Field(gt=0, le=24 * 60, description="ISA-18.2 shelving always expires (max 24 h)")
    reason: str = Field(min_length=1, max_length=500, description="Why: recorded in the timeline")


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
        timeline=timeline,
    )


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="estate-gateway", version=__version__, description="小区安防与设施物联网网关 API")

    def principal(request: Request) -> Principal:
        return ctx.auth.authenticate(request)

    User = Annotated[Principal, Depends(principal)]

    def scope(user: Principal, estate: str | None) -> frozenset[str] | None:
        if estate is not None:
            return frozenset([estate]) if user.can_see(estate) else frozenset()
        return user.estates

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - ctx.started, 1),
            **ctx.health(),
        }

    @app.get("/incidents", response_model=list[IncidentOut], tags=["incidents"])
    async def list_incidents(
        user: User,
        estate: str | None = None,
        state: IncidentState | None = None,
        priority: Priority | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[IncidentOut]:
        query = IncidentQuery(scope(user, estate), state, priority, limit, offset)
        return [incident_out(i, False) for i in await ctx.service.list(query)]

    async def visible(user: Principal, incident_id: int) -> Incident:
        incident = await ctx.service.get(incident_id)
        if incident is None or not user.can_see(incident.estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found")
        return incident

    @app.get("/incidents/{incident_id}", response_model=IncidentOut, tags=["incidents"])
    async def get_incident(incident_id: int, user: User) -> IncidentOut:
        return incident_out(await visible(user, incident_id), True)

    async def operable(user: Principal, incident_id: int) -> None:
        incident = await visible(user, incident_id)
        if not user.at_least("operator"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "operators and above may act on incidents")
        if incident.state not in (IncidentState.OPEN, IncidentState.ACKNOWLEDGED):
            raise HTTPException(status.HTTP_409_CONFLICT, f"incident is {incident.state.value}")

    @app.post("/incidents/{incident_id}/ack", response_model=IncidentOut, tags=["incidents"])
    async def ack_incident(
        incident_id: int, user: User, request: Request, body: AckIn | None = None
    ) -> IncidentOut:
        await operable(user, incident_id)
        source = request.client.host if request.client else ""
        try:
            await ctx.service.acknowledge(incident_id, user.name, source, body.note if body else "")
        except IncidentError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return incident_out(await visible(user, incident_id), True)

    @app.post("/incidents/{incident_id}/shelve", response_model=IncidentOut, tags=["incidents"])
    async def shelve_incident(incident_id: int, user: User, body: ShelveIn) -> IncidentOut:
        await operable(user, incident_id)
        try:
            await ctx.service.shelve(incident_id, user.name, body.minutes, body.reason)
        except IncidentError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return incident_out(await visible(user, incident_id), True)

    @app.post("/incidents/{incident_id}/unshelve", response_model=IncidentOut, tags=["incidents"])
    async def unshelve_incident(incident_id: int, user: User) -> IncidentOut:
        await operable(user, incident_id)
        try:
            await ctx.service.unshelve(incident_id, user.name)
        except IncidentError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return incident_out(await visible(user, incident_id), True)

    @app.get("/devices", response_model=list[DeviceOut], tags=["devices"])
    async def list_devices(user: User, estate: str | None = None) -> list[DeviceOut]:
        out = []
        for info in ctx.devices:
            if not user.can_see(info.estate) or (estate is not None and info.estate != estate):
                continue
            stats = ctx.stats.for_device(info.estate, info.device)
            out.append(
                DeviceOut(
                    estate=info.estate,
                    device=info.device,
                    family=info.family,
                    location=info.location,
                    online=ctx.online(info.estate, info.device),
                    last_seen=stats.last_seen,
                    readings=stats.readings,
                    events=stats.events,
                    polls=stats.polls,
                    errors=dict(stats.errors),
                )
            )
        return out

    return app
