"""Device routes: every configured device in the caller's scope, with online state and counters, and
taking a device out of service for maintenance (ISA-18.2: its alarms are held, not annunciated)."""

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from gateway.alerts import DeviceInfo
from gateway.api.audit import annotate
from gateway.api.auth import Principal, bearer, require
from gateway.api.confirmations import hold
from gateway.api.context import ApiContext
from gateway.api.schemas import (
    CommandIn,
    CommandOut,
    DeviceDetailOut,
    DeviceOut,
    OutOfServiceIn,
    OutOfServiceOut,
    PointOut,
)
from gateway.auth.jobs import may_command
from gateway.model import AuditEntry

log = logging.getLogger(__name__)


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
        zone=info.zone,
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
    viewer, operator, supervisor = (require(ctx.auth, r) for r in ("viewer", "operator", "supervisor"))

    @router.get("/devices", response_model=list[DeviceOut], dependencies=[viewer])
    async def list_devices(user: User, estate: str | None = None) -> list[DeviceOut]:
        if estate is not None and not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        return [
            _device_out(ctx, info)
            for info in ctx.devices
            if user.can_see(info.estate) and (estate is None or info.estate == estate)
        ]

    @router.get("/devices/{estate}/{device}", response_model=DeviceDetailOut, dependencies=[viewer])
    async def device_detail(estate: str, device: str, user: User) -> DeviceDetailOut:
        """One device with its points and where each is (a fire panel's detectors across buildings)."""
        info = next((d for d in ctx.devices if d.estate == estate and d.device == device), None)
        if info is None or not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
        points = [
            PointOut(name=name, label=info.location_of(name), zone=info.zone_of(name)) for name in info.points
        ]
        return DeviceDetailOut(**_device_out(ctx, info).model_dump(), points=points)

    last_command: dict[tuple[str, str], float] = {}

    @router.post(
        "/devices/{estate}/{device}/commands",
        response_model=CommandOut,
        dependencies=[operator],
        responses={202: {"description": "Needs a second person's confirmation (PendingOut)"}},
    )
    async def command_device(estate: str, device: str, user: User, body: CommandIn, request: Request) -> Any:
        """Send a command (e.g. generator start). Allowed per device and command by the site config (by
        rank, or by job: gateway/auth/jobs.py), with a reason, rate-limited, and audited with its outcome
        whatever it is. A dangerous command (two-person rule) answers 202 and waits for a confirmation."""
        info = next((d for d in ctx.devices if d.estate == estate and d.device == device), None)
        if info is None or not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
        least = ctx.command_policy.get((estate, device), {}).get(body.command)

        async def audit(outcome: str, detail: str) -> None:
            # Written once by the audit middleware (gateway/api/audit.py), with who and from where.
            annotate(request, action=f"command:{body.command}", estate=estate, target=device, outcome=outcome,
                     reason=body.reason, detail=detail)  # fmt: skip

        if least is None or not (user.at_least(least) or may_command(user.job, info.family, least)):
            await audit("forbidden", f"needs {least or 'a command allowed by config'}")
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"{body.command!r} is not allowed for you on this device"
            )
        if (pending := await hold(ctx, request, user, estate, device, body.command, body.reason)) is not None:
            return pending  # a two-person rule holds: nothing is sent until a second person confirms
        now = time.monotonic()
        if now - last_command.get((estate, device), -1e9) < ctx.command_interval:
            await audit("rate_limited", f"one command per {ctx.command_interval:g} s")
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many commands to this device")
        last_command[(estate, device)] = now
        commander = ctx.commanders.get((estate, device))
        if commander is None:
            await audit("refused", "the device takes no commands")
            return CommandOut(command=body.command, outcome="refused", detail="the device takes no commands")
        try:
            result = await commander.execute(body.command)
        except Exception as exc:  # a driver bug: the caller and the audit trail learn the command failed
            log.exception("command %s to %s/%s failed", body.command, estate, device)
            await audit("error", type(exc).__name__)
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, "the device command failed") from exc
        await audit(result.outcome, result.detail)
        return CommandOut(command=body.command, outcome=result.outcome, detail=result.detail)

    @router.get("/audit", response_model=list[AuditEntry], dependencies=[supervisor])  # the model's record
    async def list_audit(
        user: User, estate: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[AuditEntry]:
        """Newest first. Entries filed under no estate (logins, all-estate accounts) are shown only to
        callers who see every estate."""
        if estate is not None and not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        return await ctx.service.store.list_audit(frozenset([estate]) if estate else user.estates, limit)

    @router.post(
        "/devices/{estate}/{device}/out-of-service", response_model=DeviceOut, dependencies=[supervisor]
    )
    async def take_out_of_service(estate: str, device: str, user: User, body: OutOfServiceIn) -> DeviceOut:
        info = _maintainable(ctx, user, estate, device)
        await ctx.service.take_out_of_service(estate, device, user.name, body.reason, body.hours)
        return _device_out(ctx, info)

    @router.post("/devices/{estate}/{device}/in-service", response_model=DeviceOut, dependencies=[supervisor])
    async def return_to_service(estate: str, device: str, user: User) -> DeviceOut:
        info = _maintainable(ctx, user, estate, device)
        await ctx.service.return_to_service(estate, device)
        return _device_out(ctx, info)

    return router
