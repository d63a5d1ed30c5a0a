"""GET /cluster: which instance owns which estate, the live instances, the last ownership changes."""

from typing import Any

from fastapi import APIRouter

from gateway.api.auth import require
from gateway.api.context import ApiContext


def cluster_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["cluster"])

    @router.get("/cluster", dependencies=[require(ctx.auth, "supervisor", every_estate=True)])
    async def cluster() -> dict[str, Any]:
        """This instance's view of the estate leases (several instances on one PostgreSQL database).
        A gateway that runs alone (cluster.enabled false) owns every estate of its site file."""
        if ctx.cluster is None:
            estates = sorted({d.estate for d in ctx.devices} | set(ctx.estate_names))
            return {"enabled": False, "owned": estates, "instances": [], "leases": [], "events": []}
        return {"enabled": True, **ctx.cluster.view()}

    return router
