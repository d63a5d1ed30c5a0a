"""Accumulators and the calendar they are kept in.

A `Bucket` holds what one estate accumulated in one span of time: sums (unit-seconds, counts), samples
(durations, for means and p90), alarms per 10-minute slot (ISA-18.2 load) and alarms per key (top 10).
Buckets of the same kind add up: a month is the sum of its days, the rolling 24 h the sum of its hours.

`EstateCalendar` cuts an interval at local midnights (the estate's timezone) and at UTC hours, so a
device offline from 23:00 to 01:00 lands 1 h in each day, and in the right hourly buckets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOUR = 3600
SLOT = 600  # ISA-18.2 counts alarms per 10 minutes


@dataclass
class Bucket:
    """What an estate accumulated in one day or one hour."""

    sums: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    slots: dict[int, int] = field(default_factory=dict)  # 10-min slot start (epoch s) → alarms raised
    alarms: dict[str, int] = field(default_factory=dict)  # alarm key → activations
    labels: dict[str, list[str]] = field(default_factory=dict)  # alarm key → [message zh, message en]

    def add(self, name: str, amount: float = 1.0) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + amount

    def sample(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def alarm(self, key: str, slot: int, labels: tuple[str, str]) -> None:
        self.slots[slot] = self.slots.get(slot, 0) + 1
        self.alarms[key] = self.alarms.get(key, 0) + 1
        self.labels.setdefault(key, list(labels))

    def merge(self, other: Bucket) -> None:
        """Add `other` in (a month is 28-31 merged days, every KPI round: no call per entry here)."""
        sums, samples, slots, alarms = self.sums, self.samples, self.slots, self.alarms
        for name, value in other.sums.items():
            sums[name] = sums.get(name, 0.0) + value
        for name, values in other.samples.items():
            if name in samples:
                samples[name].extend(values)
            else:
                samples[name] = list(values)
        for slot, count in other.slots.items():
            slots[slot] = slots.get(slot, 0) + count
        for key, count in other.alarms.items():
            alarms[key] = alarms.get(key, 0) + count
        labels = self.labels
        for key, names in other.labels.items():
            labels.setdefault(key, names)

    def get(self, name: str) -> float:
        return self.sums.get(name, 0.0)

    def to_json(self) -> str:
        return json.dumps(
            {"sums": self.sums, "samples": self.samples, "slots": self.slots, "alarms": self.alarms,
             "labels": self.labels},
            ensure_ascii=False, separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Bucket:
        raw = json.loads(text)
        return cls(
            sums={str(k): float(v) for k, v in raw.get("sums", {}).items()},
            samples={str(k): [float(x) for x in v] for k, v in raw.get("samples", {}).items()},
            slots={int(k): int(v) for k, v in raw.get("slots", {}).items()},
            alarms={str(k): int(v) for k, v in raw.get("alarms", {}).items()},
            labels={str(k): [str(x) for x in v] for k, v in raw.get("labels", {}).items()},
        )


def total(buckets: list[Bucket]) -> Bucket:
    out = Bucket()
    for bucket in buckets:
        out.merge(bucket)
    return out


class EstateCalendar:
    """Local days and months of one estate's timezone, as epoch-second spans."""

    def __init__(self, timezone: str = "Asia/Shanghai") -> None:
        self.tz = ZoneInfo(timezone)
        self._day: tuple[float, float, date] = (0.0, 0.0, date.min)  # last day looked up: start, end, date

    def day_of(self, ts: float) -> date:
        start, end, day = self._day
        if start <= ts < end:
            return day
        day = datetime.fromtimestamp(ts, self.tz).date()
        self._day = (*self.day_span(day), day)
        return day

    def midnight(self, day: date) -> float:
        return datetime.combine(day, time(0), tzinfo=self.tz).timestamp()

    def day_span(self, day: date) -> tuple[float, float]:
        return self.midnight(day), self.midnight(day + timedelta(days=1))

    def month_span(self, year: int, month: int) -> tuple[float, float]:
        first = date(year, month, 1)
        following = date(year + month // 12, month % 12 + 1, 1)
        return self.midnight(first), self.midnight(following)

    def days_of_month(self, year: int, month: int) -> list[date]:
        day, out = date(year, month, 1), []
        while day.month == month:
            out.append(day)
            day += timedelta(days=1)
        return out

    def split(self, start: float, end: float) -> Iterator[tuple[float, date, int]]:
        """Pieces of [start, end): (seconds, local day, UTC hour start), cut at midnights and hours."""
        t = start
        while t < end:
            day = self.day_of(t)
            hour = int(t // HOUR) * HOUR
            cut = min(end, self._day[1], hour + HOUR)
            yield cut - t, day, hour
            t = cut
