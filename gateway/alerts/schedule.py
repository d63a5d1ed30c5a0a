"""Estate schedules: is a wall-clock moment inside the estate's gate hours, in the estate's timezone?"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


class GateHours:
    """'06:00-23:00' in 'Asia/Shanghai', with holidays that have their own hours (or none: closed).
    An end before the start wraps past midnight."""

    def __init__(
        self,
        spec: str = "06:00-23:00",
        timezone: str = "Asia/Shanghai",
        holidays: tuple[str, ...] = (),
        holiday_spec: str | None = None,
    ) -> None:
        self.span = _span(spec)
        self.tz = ZoneInfo(timezone)
        self.holidays = frozenset(holidays)  # ISO dates, in the estate's timezone
        self.holiday_span = _span(holiday_spec) if holiday_spec else None

    def inside(self, wall: float) -> bool:
        local = datetime.fromtimestamp(wall, self.tz)
        minute = local.hour * 60 + local.minute
        span = self.span
        if local.date().isoformat() in self.holidays:
            if self.holiday_span is None:
                return False
            span = self.holiday_span
        start, end = span
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end


def _span(spec: str) -> tuple[int, int]:
    start, end = spec.split("-")
    return _minutes(start), _minutes(end)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)
