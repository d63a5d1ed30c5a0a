"""Maintenance routes: an estate's duties with due dates and status (viewer+), and recording a duty as
done (operator+: the staff who do or witness the work; the records keep who and when, and the audit
trail has the call). Scope: another estate's duties are a 404, as if they did not exist; 503 when this
gateway tracks no duties at all.
"""

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from gateway.api.audit import annotate
from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.maintenance import DutyView, MaintenanceTracker
from gateway.store.duties import MaintenanceRecord

FUTURE_SLACK = 300.0  # a completion may not be dated later than now plus this (clock differences)


class RecordOut(BaseModel):
    id: int | None = Field(description="Record id")
    duty: str = Field(description="Duty id")
    done_at: float = Field(description="When it was done, epoch s")
    by: str = Field(description="Who recorded it (`gateway` when detected from readings)")
    how: str = Field(description="detected (from the device's readings) | recorded (by a person)")
    note: str = Field(description="Note given with the record")


class DutyOut(BaseModel):
    id: str = Field(description="Duty id")
    kind: str = Field(description="generator_test_run | generator_service | fire_annual_inspection | ...")
    name_zh: str = Field(description="Duty name (Chinese)")
    name_en: str = Field(description="Duty name (English)")
    device: str | None = Field(description="Device it is for; null: the whole estate")
    status: str = Field(description="ok | due_soon | overdue | unknown (no run-hours reading yet)")
    due_at: float | None = Field(description="Due date, epoch s (calendar duties)")
    due_run_hours: float | None = Field(description="Due at these engine run-hours (generator_service)")
    run_hours: float | None = Field(description="The generator's run-hours now (generator_service)")
    last_done: float | None = Field(description="Last completion, epoch s")
    alarmed: bool = Field(description="Its overdue alarm is raised")
    last_record: RecordOut | None = Field(description="The latest completion record")


class CompleteIn(BaseModel):
    note: str = Field("", max_length=500, description="What was done, e.g. '灭火器 24 具 全部合格'")
    done_at: datetime | None = Field(
        None, description="When it was done (no zone: the estate's local time); default now"
    )


def record_out(record: MaintenanceRecord) -> RecordOut:
    return RecordOut(id=record.id, duty=record.duty, done_at=record.done_at, by=record.by, how=record.how,
                     note=record.note)  # fmt: skip


def duty_out(view: DutyView, last: MaintenanceRecord | None) -> DutyOut:
    d = view.duty
    return DutyOut(
        id=d.id, kind=d.kind, name_zh=d.name.zh, name_en=d.name.en, device=d.device, status=view.status,
        due_at=view.due_at, due_run_hours=view.due_run_hours, run_hours=view.run_hours,
        last_done=view.last_done, alarmed=view.alarmed, last_record=record_out(last) if last else None,
    )  # fmt: skip


async def duties_of(tracker: MaintenanceTracker, estate: str) -> list[DutyOut]:
    """An estate's duties with their latest records (the console reads this too)."""
    records = await tracker.store.list_maintenance_records(estate, None, 500)
    latest: dict[str, MaintenanceRecord] = {}
    for record in records:  # newest first
        latest.setdefault(record.duty, record)
    return [duty_out(view, latest.get(view.duty.id)) for view in tracker.view(estate)]


def maintenance_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["maintenance"])
    User = Annotated[Principal, Depends(bearer(ctx.auth))]
    viewer = require(ctx.auth, "viewer")
    operator = require(ctx.auth, "operator")

    def visible(user: Principal, estate: str) -> None:
        if not user.can_see(estate) or estate not in ctx.timezones:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")

    @router.get("/maintenance/duties", response_model=list[DutyOut], dependencies=[viewer])
    async def list_duties(
        user: User, estate: Annotated[str, Query(description="Estate id")]
    ) -> list[DutyOut]:
        """An estate's maintenance duties (维保): due dates, status, the latest completion."""
        visible(user, estate)
        return [] if ctx.maintenance is None else await duties_of(ctx.maintenance, estate)

    @router.post(
        "/maintenance/duties/{estate}/{duty}/complete", response_model=RecordOut, dependencies=[operator]
    )
    async def complete_duty(
        estate: str, duty: str, body: CompleteIn, user: User, request: Request
    ) -> RecordOut:
        """Record a duty as done (who: the caller; when: `done_at` or now). Its overdue alarm clears and
        its next due date counts from this completion. Audited."""
        visible(user, estate)
        tracker = ctx.maintenance
        if tracker is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no maintenance duties on this gateway")
        if (estate, duty) not in tracker.duties:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "duty not found")
        if tracker.duties[(estate, duty)].kind == "generator_test_run":  # not ticked by hand
            raise HTTPException(
                status.HTTP_409_CONFLICT, "a test run is detected from the generator's readings"
            )
        done_at = None
        if body.done_at is not None:
            moment = body.done_at
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(ctx.timezones.get(estate, "Asia/Shanghai")))
            done_at = moment.timestamp()
            if done_at > tracker.clock.now() + FUTURE_SLACK:
                raise HTTPException(422, "done_at is in the future")
        annotate(request, action="maintenance_complete", estate=estate, target=duty, note=body.note[:200])
        record = await tracker.complete(estate, duty, user.name, body.note, done_at, "recorded")
        return record_out(record)

    return router
