"""Quiet hours: when a non-critical notification waits until morning. Critical is never quiet."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

SPEC = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def quiet_until(spec: str, timezone: str, at: float) -> float | None:
    """The end (epoch s) of the quiet window `at` falls in, or None when `at` is not quiet.

    '23:00-07:00' wraps past midnight; times are the estate's local wall clock."""
    match = SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"quiet hours must look like HH:MM-HH:MM, not {spec!r}")
    sh, sm, eh, em = (int(g) for g in match.groups())
    start, end = sh * 60 + sm, eh * 60 + em
    local = datetime.fromtimestamp(at, ZoneInfo(timezone))
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start <= end else (minute >= start or minute < end)
    if not inside or start == end:
        return None
    day = local.date() + timedelta(days=1) if start > end and minute >= start else local.date()
    ends = datetime(day.year, day.month, day.day, eh, em, tzinfo=local.tzinfo)
    return ends.timestamp()
