"""Duty roster route: who is on duty in each role of an estate, now or at a given moment. Anyone with a
token for the estate may read it (the control room needs to know whom it escalates to); phone numbers,
e-mail addresses and IM ids are personal data: operators and above see them (the control room must be
able to call the duty manager), viewers do not."""

import math
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.escalation.roster import Duty, Roster
from gateway.escalation.types import Person

__all__ = ["DutyOut", "duty_router"]


class ContactOut(BaseModel):
    phone: str | None
    email: str | None
    im: dict[str, str] = Field(description="IM channel → user id")


class OnDutyOut(BaseModel):
    id: str
    name: str
    contact: ContactOut | None = Field(description="Supervisors and above only; null for other roles")


class RoleDutyOut(BaseModel):
    role: str
    label: str | None = Field(description="Display name, e.g. 值班经理")
    people: list[OnDutyOut] = Field(
        description="Empty: nobody on duty (escalation falls back to the control room)"
    )
    shift: str | None = Field(description="Shift running for this role; null: the role is not staffed now")
    shift_start: float | None = Field(description="Epoch s")
    shift_end: float | None = Field(description="Epoch s: who is on duty is looked up again then")
    shift_end_local: str | None = Field(description="ISO 8601 in the estate's timezone")
    notes: list[str] = Field(description="Overrides and swaps in effect, e.g. 春节值班")


class DutyOut(BaseModel):
    estate: str
    at: float = Field(description="The moment asked about, epoch s")
    local_time: str = Field(description="The same moment in the estate's timezone, ISO 8601")
    timezone: str
    roles: list[RoleDutyOut]


def _moment(at: str | None, roster: Roster) -> float:
    """Epoch seconds from '1762200000', or ISO 8601 (no offset: the estate's local time)."""
    if at is None:
        return time.time()
    try:
        epoch = float(at)
    except ValueError:
        try:
            moment = datetime.fromisoformat(at.strip())
        except ValueError:
            raise HTTPException(422, f"at={at!r}: give epoch seconds or ISO 8601") from None
        return (moment if moment.tzinfo else moment.replace(tzinfo=roster.tz)).timestamp()
    if not math.isfinite(epoch):
        raise HTTPException(422, f"at={at!r}: give epoch seconds or ISO 8601")
    return epoch


def _person_out(person: Person, contacts: bool) -> OnDutyOut:
    contact = ContactOut(phone=person.phone, email=person.email, im=dict(person.im)) if contacts else None
    return OnDutyOut(id=person.id, name=person.name, contact=contact)


def _role_out(roster: Roster, duty: Duty, contacts: bool) -> RoleDutyOut:
    span = duty.shift
    return RoleDutyOut(
        role=duty.role,
        label=roster.label(duty.role),
        people=[_person_out(p, contacts) for p in duty.people],
        shift=span.name if span else None,
        shift_start=span.start if span else None,
        shift_end=span.end if span else None,
        shift_end_local=datetime.fromtimestamp(span.end, roster.tz).isoformat() if span else None,
        notes=list(duty.notes),
    )


def duty_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["duty"])
    User = Annotated[Principal, Depends(bearer(ctx.auth))]

    @router.get("/estates/{estate}/duty", response_model=DutyOut, dependencies=[require(ctx.auth, "viewer")])
    async def on_duty(
        estate: str,
        user: User,
        at: Annotated[
            str | None, Query(description="Epoch s or ISO 8601 (no offset: estate local time); default now")
        ] = None,
    ) -> DutyOut:
        roster = ctx.rosters.get(estate)
        if roster is None or not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        moment = _moment(at, roster)
        contacts = user.at_least("operator")
        return DutyOut(
            estate=estate,
            at=moment,
            local_time=datetime.fromtimestamp(moment, roster.tz).isoformat(),
            timezone=roster.timezone,
            roles=[_role_out(roster, roster.duty(role, moment), contacts) for role in roster.roles()],
        )

    return router
