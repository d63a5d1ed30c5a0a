"""Guard-tour routes: a day's tours of an estate with each checkpoint's punch and status (viewer+).

Scope: an estate outside the caller's scope is a 404, exactly like one that does not exist. Tours come
from the store (`patrol_tours`), so yesterday's are there after a restart too.
"""

import json
import time
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext


class PunchOut(BaseModel):
    checkpoint: str = Field(description="Checkpoint id")
    name_zh: str = Field(description="Checkpoint name (Chinese)")
    name_en: str = Field(description="Checkpoint name (English)")
    device: str = Field(description="The reader that punches it")
    expected_at: float = Field(description="Expected punch time, epoch s")
    deadline: float = Field(description="Expected time plus the tolerance, epoch s")
    punched_at: float | None = Field(description="When it was punched, epoch s; null: not (yet)")
    status: str = Field(description="pending | on_time | late | skipped | missed")


class TourOut(BaseModel):
    estate: str = Field(description="Estate id")
    route: str = Field(description="Route id")
    route_zh: str = Field(description="Route name (Chinese)")
    route_en: str = Field(description="Route name (English)")
    due_at: float = Field(description="Scheduled start, epoch s")
    ends_at: float = Field(description="End of the tour (start + max duration), epoch s")
    status: str = Field(description="due | in_progress | completed | late | out_of_order | missed")
    started_at: float | None = Field(description="First punch, epoch s")
    finished_at: float | None = Field(description="When the tour ended, epoch s")
    checkpoints: list[PunchOut] = Field(description="In route order")


def tour_out(data: dict[str, Any], names: dict[str, tuple[str, str]], cps: dict[str, tuple[str, str, str]]
             ) -> TourOut:  # fmt: skip
    """One stored tour (its JSON) with the names of its route and checkpoints from the config."""
    due, tolerance = float(data["due_at"]), float(data["tolerance_s"])
    route_zh, route_en = names.get(data["route"], (data["route"], data["route"]))
    punches = []
    for (cp, after), state, punched in zip(data["plan"], data["states"], data["punched"], strict=True):
        zh, en, device = cps.get(cp, (cp, cp, ""))
        punches.append(PunchOut(
            checkpoint=cp, name_zh=zh, name_en=en, device=device, expected_at=due + after,
            deadline=due + after + tolerance, punched_at=punched, status=state,
        ))  # fmt: skip
    return TourOut(
        estate=data["estate"], route=data["route"], route_zh=route_zh, route_en=route_en, due_at=due,
        ends_at=float(data["ends_at"]), status=data["status"], started_at=data["started_at"],
        finished_at=data["finished_at"], checkpoints=punches,
    )  # fmt: skip


async def tours_of_day(ctx: ApiContext, estate: str, day: date | None) -> list[TourOut]:
    """The tours of `estate` scheduled on a local day (default: today); the console reads this too."""
    tz = ZoneInfo(ctx.timezones.get(estate, "Asia/Shanghai"))
    now = ctx.patrol.clock.now() if ctx.patrol is not None else time.time()
    day = day or datetime.fromtimestamp(now, tz).date()
    start = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz).timestamp()
    rows = await ctx.service.store.load_patrol_tours(frozenset({estate}), start, end)
    names: dict[str, tuple[str, str]] = {}
    cps: dict[str, dict[str, tuple[str, str, str]]] = {}
    if ctx.patrol is not None:
        for (e, route_id), route in ctx.patrol.routes.items():
            if e == estate:
                names[route_id] = (route.name.zh, route.name.en)
                cps[route_id] = {c.id: (c.name.zh, c.name.en, c.device) for c in route.checkpoints}
    return [tour_out(json.loads(data), names, cps.get(route, {})) for _, route, _, _, data in rows]


def patrol_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["patrol"])
    User = Annotated[Principal, Depends(bearer(ctx.auth))]
    viewer = require(ctx.auth, "viewer")

    @router.get("/patrol/tours", response_model=list[TourOut], dependencies=[viewer])
    async def list_tours(
        user: User,
        estate: Annotated[str, Query(description="Estate id")],
        day: Annotated[date | None, Query(alias="date", description="Local date; default today")] = None,
    ) -> list[TourOut]:
        """A day's guard tours (安全巡逻) with each checkpoint's punch and status."""
        if not user.can_see(estate) or estate not in ctx.timezones:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        return await tours_of_day(ctx, estate, day)

    return router
