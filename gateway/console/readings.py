"""Recent readings of one point, for the console's device chart: from the in-memory rings
(gateway.console.recent), scoped like every device route (another estate's device is a 404)."""

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.console.recent import Sample

__all__ = ["ReadingsOut", "readings_router"]


class SampleOut(BaseModel):
    ts: float = Field(description="Epoch s")
    value: float | int | bool | str
    quality: str


class ReadingsOut(BaseModel):
    estate: str
    device: str
    point: str
    unit: str
    minutes: float
    samples: list[SampleOut] = Field(description="Oldest first; a sample per change or every few seconds")


def readings_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["devices"])
    User = Annotated[Principal, Depends(bearer(ctx.auth))]

    @router.get(
        "/devices/{estate}/{device}/readings",
        response_model=ReadingsOut,
        dependencies=[require(ctx.auth, "viewer")],
    )
    async def recent_readings(
        estate: str,
        device: str,
        user: User,
        point: Annotated[str, Query(min_length=1, max_length=200)],
        minutes: Annotated[float, Query(gt=0, le=24 * 60)] = 60,
    ) -> ReadingsOut:
        info = next((d for d in ctx.devices if d.estate == estate and d.device == device), None)
        if info is None or not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
        unit, samples = "", list[Sample]()
        if ctx.recent is not None:
            unit, samples = ctx.recent.series(estate, device, point, time.time() - minutes * 60)
        if not samples and point not in info.points:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "point not found")
        return ReadingsOut(
            estate=estate, device=device, point=point, unit=unit, minutes=minutes,
            samples=[SampleOut(ts=s.ts, value=s.value, quality=s.quality) for s in samples],
        )  # fmt: skip

    return router
