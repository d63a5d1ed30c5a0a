"""Incident actions beyond the lifecycle: assign, comment, and bulk acknowledge (alarm floods).

Scope as everywhere: an incident outside the caller's estates is a 404 (in a bulk ack: `not_found`).
Operators and above may act; every action goes through the IncidentService and lands in the timeline.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.api.fanout import acknowledge_across, open_in_store
from gateway.api.schemas import (
    AckOutcomeOut,
    AssignIn,
    BulkAckIn,
    BulkAckOut,
    CommentIn,
    IncidentOut,
    incident_out,
)
from gateway.cluster.forward import FORWARDED_HEADER
from gateway.incidents import IncidentError
from gateway.model import Incident


async def _visible(ctx: ApiContext, user: Principal, incident_id: int) -> Incident:
    incident = await ctx.service.get(incident_id)
    if incident is None or not user.can_see(incident.estate):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found")
    return incident


def incident_action_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["incidents"])

    User = Annotated[Principal, Depends(bearer(ctx.auth))]
    operator = require(ctx.auth, "operator")  # 401 without credentials, 403 below operator

    @router.post("/incidents/ack", response_model=BulkAckOut, dependencies=[operator])
    async def ack_many(user: User, body: BulkAckIn, request: Request) -> BulkAckOut:
        """Acknowledge many incidents at once (a flood): by `ids`, or every open incident in your scope
        matching `estate` and/or `priority`. One outcome per id; out-of-scope ids are `not_found`."""
        if body.ids is None:
            if body.estate is None and body.priority is None:
                raise HTTPException(422, "give ids, or an estate and/or priority filter")
            if ctx.cluster is None:
                ids = ctx.service.open_incidents(user.estates, body.estate, body.priority)
            else:  # several instances: the open incidents of every estate, from the shared database
                ids = await open_in_store(ctx, user, body)
        else:
            ids = body.ids
        source = request.client.host if request.client else ""
        if ctx.cluster is not None and FORWARDED_HEADER not in request.headers:
            outcomes = await acknowledge_across(ctx, user, ids, body.note, source, dict(request.headers))
        else:
            outcomes = await ctx.service.acknowledge_many(
                ids, user.name, source, body.note, lambda incident: user.can_see(incident.estate)
            )
        return BulkAckOut(
            acknowledged=sum(1 for o in outcomes.values() if o == "acknowledged"),
            results=[AckOutcomeOut(id=i, outcome=o) for i, o in outcomes.items()],
        )

    @router.post("/incidents/{incident_id}/assign", response_model=IncidentOut, dependencies=[operator])
    async def assign_incident(incident_id: int, user: User, body: AssignIn) -> IncidentOut:
        """Assign to a user, or unassign with `"assignee": null`; any state but closed."""
        await _visible(ctx, user, incident_id)
        try:
            await ctx.service.assign(incident_id, user.name, body.assignee)
        except IncidentError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return incident_out(await _visible(ctx, user, incident_id), True)

    @router.post("/incidents/{incident_id}/comment", response_model=IncidentOut, dependencies=[operator])
    async def comment_incident(incident_id: int, user: User, body: CommentIn) -> IncidentOut:
        """Add a comment to the timeline; any state but closed."""
        await _visible(ctx, user, incident_id)
        try:
            await ctx.service.comment(incident_id, user.name, body.text.strip())
        except IncidentError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return incident_out(await _visible(ctx, user, incident_id), True)

    return router
