"""One maintenance duty's due date and status. Pure: config, remembered state and time in.

Date duties are due `every_days` days or `every_months` calendar months (the estate's local calendar)
after the last completion; a duty never completed counts from its configured `last_done` date, or else
from when the gateway first tracked it. `generator_service` is due when the generator's run-hours reach
those at the last service plus `every_run_hours` (never serviced: from the first run-hours reading).
Status: `ok`, `due_soon` (inside the reminder margin), `overdue` (past due).
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.config.maintenance import DutyConfig

__all__ = ["DutyState", "DutyStatus", "Judgement", "judge"]

DutyStatus = Literal["ok", "due_soon", "overdue", "unknown"]


@dataclass
class DutyState:
    """What the gateway remembers of a duty between evaluations (saved as JSON in the store)."""

    since: float  # first tracked (the base of a duty never done)
    last_done: float | None = None
    run_hours: float | None = None  # latest run-hours reading of its generator
    run_hours_at_last: float | None = None  # run-hours at the last service
    reminded_for: float | None = None  # the due date / due run-hours a reminder was sent for
    alarmed: bool = False  # the overdue alarm is raised (cleared when a completion is recorded)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DutyState:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


@dataclass(frozen=True)
class Judgement:
    status: DutyStatus
    due_at: float | None = None  # date duties
    due_run_hours: float | None = None  # generator_service

    @property
    def due_key(self) -> float | None:
        """What a reminder is sent for: the due date or the due run-hours (one reminder each)."""
        return self.due_at if self.due_at is not None else self.due_run_hours


def _add_months(moment: datetime, months: int) -> datetime:
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def base_of(duty: DutyConfig, state: DutyState, tz: ZoneInfo) -> float:
    if state.last_done is not None:
        return state.last_done
    if duty.last_done is not None:
        return datetime.combine(duty.last_done, time(0), tzinfo=tz).timestamp()
    return state.since


def judge(duty: DutyConfig, state: DutyState, now: float, timezone: str) -> Judgement:
    """The duty's status at `now`."""
    if duty.kind == "generator_service":
        assert duty.every_run_hours is not None
        start = state.run_hours_at_last
        if start is None or state.run_hours is None:
            return Judgement("unknown")
        due = start + duty.every_run_hours
        if state.run_hours >= due:
            return Judgement("overdue", due_run_hours=due)
        soon = state.run_hours >= due - duty.remind_before_hours
        return Judgement("due_soon" if soon else "ok", due_run_hours=due)
    tz = ZoneInfo(timezone)
    base = datetime.fromtimestamp(base_of(duty, state, tz), tz)
    if duty.every_months is not None:
        due_dt = _add_months(base, duty.every_months)
    else:
        due_dt = base + timedelta(days=duty.every_days or 0)
    due = due_dt.timestamp()
    if now >= due:
        return Judgement("overdue", due_at=due)
    soon = now >= due - duty.remind_before_days * 86400
    return Judgement("due_soon" if soon else "ok", due_at=due)
