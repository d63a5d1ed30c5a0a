"""Device routes: every configured device in the caller's scope, with online state and counters, and
taking a device out of service for maintenance (ISA-18.2: its alarms are held, not annunciated)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from gateway.alerts import DeviceInfo
from gateway.api.auth import Principal, bearer
from gateway.api.context import ApiContext
from gateway.api.schemas import DeviceOut, OutOfServiceIn, OutOfServiceOut


def _device_out(ctx: ApiContext, info: DeviceInfo) -> DeviceOut:
    stats = ctx.stats.for_device(info.estate, info.device)
    oos = ctx.service.manager.out_of_service.get((info.estate, info.device))
    return DeviceOut(
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
        out_of_service=OutOfServiceOut(since=oos.since, until=oos.until, actor=oos.actor, reason=oos.reason)
        if oos
        else None,
    )


def _maintainable(ctx: ApiContext, user: Principal, estate: str, device: str) -> DeviceInfo:
    info = next((d for d in ctx.devices if d.estate == estate and d.device == device), None)
    if info is None or not user.can_see(estate):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    if not user.at_least("supervisor"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "supervisors and above may take devices out of service"
        )
    return info


def device_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["devices"])

    User = Annotated[Principal, Depends(bearer(ctx.auth))]

    @router.get("/devices", response_model=list[DeviceOut])
    async def list_devices(user: User, estate: str | None = None) -> list[DeviceOut]:
        return [
            _device_out(ctx, info)
            for info in ctx.devices
            if user.can_see(info.estate) and (estate is None or info.estate == estate)
        ]

    @router.post("/devices/{estate}/{device}/out-of-service", response_model=DeviceOut)
    async def take_out_of_service(estate: str, device: str, user: User, body: OutOfServiceIn) -> DeviceOut:
        info = _maintainable(ctx, user, estate, device)
        await ctx.service.take_out_of_service(estate, device, user.name, body.reason, body.hours)
        return _device_out(ctx, info)

    @router.post("/devices/{estate}/{device}/in-service", response_model=DeviceOut)
    async def return_to_service(estate: str, device: str, user: User) -> DeviceOut:
        info = _maintainable(ctx, user, estate, device)
        await ctx.service.return_to_service(estate, device)
        return _device_out(ctx, info)

    return router
