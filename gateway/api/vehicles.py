"""Vehicle registry routes: what the gatehouse does all day. A guard registers a visitor's car for a
few hours, checks a plate, or cancels a pass; every change is stored (it survives a restart), takes
effect on the next read of any camera of the estate, and is audited. Plates are personal data: viewers
do not see them."""

import time
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from drivers.anpr.registry import Category, Vehicle, VehicleRegistry, normalize_plate
from gateway.api.audit import annotate
from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.model import VisitorPass

# A pass made "now" must cover the car at the barrier, whose camera clock may run a little behind ours
# (and Alphadigi stamps whole seconds).
CAMERA_CLOCK_SLACK = 60.0


class VehicleOut(BaseModel):
    plate: str
    category: Category
    label: str
    valid_from: float | None
    valid_until: float | None
    pass_id: int | None = Field(description="Id of a pass registered through the API (cancel it by id)")


class VisitorPassIn(BaseModel):
    plate: str = Field(min_length=2, max_length=16, description="e.g. 粤A88888")
    label: str = Field("", max_length=100, description="Visitor and host, e.g. '访客 王先生 → 5-201'")
    valid_from: datetime | None = Field(None, description="Start (no zone: the estate's local time); now")
    hours: float = Field(4.0, gt=0, le=720, description="How long the pass lasts")


class DecisionOut(BaseModel):
    plate: str
    category: Category
    open: bool
    detail: str


def _vehicle_out(vehicle: Vehicle) -> VehicleOut:
    return VehicleOut(
        plate=vehicle.plate, category=vehicle.category, label=vehicle.label,
        valid_from=vehicle.valid_from, valid_until=vehicle.valid_until, pass_id=vehicle.ref,
    )  # fmt: skip


def vehicle_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["vehicles"])
    User = Annotated[Principal, Depends(bearer(ctx.auth))]
    operator = require(ctx.auth, "operator")  # plates are personal data: not for viewers

    def registry_for(user: User, estate: str) -> VehicleRegistry:
        registry = ctx.registries.get(estate)
        if registry is None or not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        if not user.at_least("operator"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "operators and above manage vehicles")
        return registry

    async def audit(
        user: Principal, request: Request, action: str, estate: str, target: str, detail: dict[str, object]
    ) -> None:
        # Written once by the audit middleware (gateway/api/audit.py), with who, from where, the status.
        annotate(request, action=action, estate=estate, target=target, **detail)

    @router.get("/estates/{estate}/vehicles", response_model=list[VehicleOut], dependencies=[operator])
    async def list_vehicles(estate: str, user: User) -> list[VehicleOut]:
        return [_vehicle_out(v) for v in registry_for(user, estate).entries()]

    @router.get("/estates/{estate}/plate-check", response_model=DecisionOut, dependencies=[operator])
    async def check_plate(
        estate: str, user: User, plate: Annotated[str, Query(min_length=1, max_length=16)],
        direction: Literal["in", "out"] | None = None,
    ) -> DecisionOut:  # fmt: skip
        """What a camera of this estate would decide for this plate now."""
        decision = registry_for(user, estate).decide(plate, direction, time.time())
        return DecisionOut(
            plate=decision.plate, category=decision.category, open=decision.open, detail=decision.detail
        )

    @router.post(
        "/estates/{estate}/visitor-passes",
        response_model=VehicleOut,
        status_code=201,
        dependencies=[operator],
    )
    async def add_pass(estate: str, user: User, body: VisitorPassIn, request: Request) -> VehicleOut:
        registry = registry_for(user, estate)
        plate = normalize_plate(body.plate)
        if not plate:
            raise HTTPException(422, f"{body.plate!r} is not a plate")
        now = time.time()
        start, until = now - CAMERA_CLOCK_SLACK, now + body.hours * 3600
        if body.valid_from is not None:
            zone = ZoneInfo(ctx.timezones.get(estate, "Asia/Shanghai"))
            moment = body.valid_from if body.valid_from.tzinfo else body.valid_from.replace(tzinfo=zone)
            start = moment.timestamp()
            until = start + body.hours * 3600
        record = await ctx.service.store.add_visitor_pass(
            VisitorPass(None, estate, plate, body.label, start, until, user.name, now)
        )
        vehicle = registry.add(
            Vehicle(plate, Category.VISITOR, record.label, record.valid_from, record.valid_until, record.id)
        )
        await audit(user, request, "visitor_pass:add", estate, plate,
                    {"pass_id": record.id, "label": body.label, "hours": body.hours})  # fmt: skip
        return _vehicle_out(vehicle)

    @router.delete("/estates/{estate}/visitor-passes/{pass_id}", status_code=204, dependencies=[operator])
    async def cancel_pass(estate: str, pass_id: int, user: User, request: Request) -> None:
        registry = registry_for(user, estate)
        record = await ctx.service.store.delete_visitor_pass(estate, pass_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such pass")
        registry.remove_pass(pass_id)
        await audit(user, request, "visitor_pass:cancel", estate, record.plate, {"pass_id": pass_id})

    return router
