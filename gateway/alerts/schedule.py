"""Estate schedules: is a wall-clock moment inside the estate's gate hours, in the estate's timezone?"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


class GateHours:
    """'06:00-23:00' in 'Asia/Shanghai'. An end before the start wraps past midnight."""

    def __init__(self, spec: str = "06:00-23:00", timezone: str = "Asia/Shanghai") -> None:
        start, end = spec.split("-")
        self.start = _minutes(start)
        self.end = _minutes(end)
        self.tz = ZoneInfo(timezone)

    def inside(self, wall: float) -> bool:
        local = datetime.fromtimestamp(wall, self.tz)
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)
