"""When a route's tours are due: its schedule lines' local start times as epoch seconds (the estate's
timezone; a start that falls in a DST gap or fold is taken as the zone resolves it)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config.patrol import RouteConfig

__all__ = ["due_times"]


def due_times(route: RouteConfig, timezone: str, after: float, until: float) -> list[float]:
    """Scheduled starts of `route` in (after, until], ascending."""
    tz = ZoneInfo(timezone)
    minutes = sorted({m for spec in route.schedule for m in spec.minutes})
    day = datetime.fromtimestamp(after, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(until, tz).date()
    out: list[float] = []
    while day <= last:
        for minute in minutes:
            ts = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz).timestamp()
            if after < ts <= until:
                out.append(ts)
        day += timedelta(days=1)
    return out
