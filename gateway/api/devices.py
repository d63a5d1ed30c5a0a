"""Device routes: every configured device in the caller's scope, with online state and counters."""

from typing import Annotated

from fastapi import APIRouter, Depends

from gateway.api.auth import Principal, bearer
from gateway.api.context import ApiContext
from gateway.api.schemas import DeviceOut


def device_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["devices"])

    User = Annotated[Principal, Depends(bearer(ctx.auth))]

    @router.get("/devices", response_model=list[DeviceOut], tags=["devices"])
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

    return router
