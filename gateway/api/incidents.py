"""Incident routes: list, detail, and the operator actions (ack, resolve, close, shelve, unshelve).

Scope is enforced in the query: an incident of an estate outside the caller's scope is a 404, and never
appears in a list. Every action goes through the IncidentService and lands in the incident's timeline.
"""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.api.schemas import AckIn, IncidentOut, ResolveIn, ShelveIn, incident_out
from gateway.incidents import IncidentError
from gateway.model import Incident, IncidentState, Priority
from gateway.store import IncidentQuery


def scope(user: Principal, estate: str | None) -> frozenset[str] | None:
    """The estates a query may touch: the caller's scope, narrowed to `estate` if given (404 when that
    estate is outside the scope: asking for it must not tell whether it exists)."""
    if estate is not None:
        if not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        return frozenset([estate])
    return user.estates


async def visible(ctx: ApiContext, user: Principal, incident_id: int) -> Incident:
    """The incident, or 404 when it does not exist or is outside the caller's estates."""
    incident = await ctx.service.get(incident_id)
    if incident is None or not user.can_see(incident.estate):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found")
    return incident


async def act(
    ctx: ApiContext,
    user: Principal,
    incident_id: int,
    action: Callable[[], Awaitable[object]],
    role: str = "operator",
) -> IncidentOut:
    """An operator action: visible, allowed for the role, done through the service (409 if the state
    forbids it), answered with the incident as it is now. `close` (supervisor) acts on resolved ones."""
    try:
        incident = await visible(ctx, user, incident_id)
        if not user.at_least(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{role}s and above may do this")
        if role == "operator" and incident.state not in (IncidentState.OPEN, IncidentState.ACKNOWLEDGED):
            raise HTTPException(status.HTTP_409_CONFLICT, f"incident is {incident.state.value}")
        await action()
    except IncidentError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return incident_out(await visible(ctx, user, incident_id), True)


def incident_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["incidents"])

    User = Annotated[Principal, Depends(bearer(ctx.auth))]
    viewer, operator, supervisor = (require(ctx.auth, r) for r in ("viewer", "operator", "supervisor"))

    @router.get("/incidents", response_model=list[IncidentOut], tags=["incidents"], dependencies=[viewer])
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

    @router.get("/incidents/{incident_id}", response_model=IncidentOut, dependencies=[viewer])
    async def get_incident(incident_id: int, user: User) -> IncidentOut:
        incident = await visible(ctx, user, incident_id)
        out = incident_out(incident, True)
        if ctx.evidence is not None:  # camera links and plate pictures (gateway/evidence)
            out.evidence = await ctx.evidence.for_incident(incident)
        return out

    @router.post("/incidents/{incident_id}/ack", response_model=IncidentOut, dependencies=[operator])
    async def ack_incident(
        incident_id: int, user: User, request: Request, body: AckIn | None = None
    ) -> IncidentOut:
        source = request.client.host if request.client else ""
        note = body.note if body else ""
        return await act(
            ctx, user, incident_id, partial(ctx.service.acknowledge, incident_id, user.name, source, note)
        )

    @router.post("/incidents/{incident_id}/resolve", response_model=IncidentOut, dependencies=[operator])
    async def resolve_incident(incident_id: int, user: User, body: ResolveIn) -> IncidentOut:
        action = partial(ctx.service.resolve, incident_id, user.name, body.cause, body.note)
        return await act(ctx, user, incident_id, action)

    @router.post("/incidents/{incident_id}/close", response_model=IncidentOut, dependencies=[supervisor])
    async def close_incident(incident_id: int, user: User) -> IncidentOut:
        return await act(
            ctx, user, incident_id, partial(ctx.service.close, incident_id, user.name), role="supervisor"
        )

    @router.post("/incidents/{incident_id}/shelve", response_model=IncidentOut, dependencies=[operator])
    async def shelve_incident(incident_id: int, user: User, body: ShelveIn) -> IncidentOut:
        action = partial(ctx.service.shelve, incident_id, user.name, body.minutes, body.reason)
        return await act(ctx, user, incident_id, action)

    @router.post("/incidents/{incident_id}/unshelve", response_model=IncidentOut, dependencies=[operator])
    async def unshelve_incident(incident_id: int, user: User) -> IncidentOut:
        return await act(ctx, user, incident_id, partial(ctx.service.unshelve, incident_id, user.name))

    return router
