"""Bulk acknowledgement with several gateway instances (gateway/cluster): each instance decides only its
own estates' incidents, so a flood ack is split by owner. This instance's share goes through its
IncidentService; each peer's share is one forwarded `POST /incidents/ack` with the caller's credentials
(authorised and audited there). Ids whose estate has no live owner right now come back `unavailable`.
"""

from typing import Any

from gateway.api.auth import Principal
from gateway.api.context import ApiContext
from gateway.api.schemas import BulkAckIn
from gateway.model import IncidentState
from gateway.store.base import IncidentQuery

__all__ = ["acknowledge_across", "open_in_store"]


async def open_in_store(ctx: ApiContext, user: Principal, body: BulkAckIn) -> list[int]:
    """Open incidents in the caller's scope matching the filter, in every estate (not only ours)."""
    if body.estate is None:
        estates = user.estates
    else:  # one estate, if the caller may see it (else nothing)
        estates = frozenset({body.estate}) if user.can_see(body.estate) else frozenset()
    query = IncidentQuery(estates=estates, state=IncidentState.OPEN, priority=body.priority, limit=1000)
    return [i.id for i in await ctx.service.list(query)]


async def acknowledge_across(
    ctx: ApiContext, user: Principal, ids: list[int], note: str, source: str, headers: dict[str, str]
) -> dict[int, str]:
    assert ctx.cluster is not None
    outcomes: dict[int, str] = {}
    local: list[int] = []
    remote: dict[str, list[int]] = {}  # peer url → ids
    for incident_id in dict.fromkeys(ids):
        incident = await ctx.service.get(incident_id)
        if incident is None or not user.can_see(incident.estate):
            outcomes[incident_id] = "not_found"
            continue
        owner = await ctx.cluster.owner_of(incident.estate)
        if owner.here:
            local.append(incident_id)
        elif owner.url is None:
            outcomes[incident_id] = "unavailable"
        else:
            remote.setdefault(owner.url, []).append(incident_id)
    if local:
        outcomes.update(
            await ctx.service.acknowledge_many(
                local, user.name, source, note, lambda i: user.can_see(i.estate)
            )
        )
    for url, share in remote.items():
        try:
            answer: Any = await ctx.cluster.post_to(
                url, "/incidents/ack", {"ids": share, "note": note}, headers
            )
            outcomes.update({int(r["id"]): str(r["outcome"]) for r in answer["results"]})
        except (ConnectionError, KeyError, TypeError, ValueError):
            outcomes.update({i: "unavailable" for i in share})
    return {i: outcomes[i] for i in dict.fromkeys(ids)}
