"""Recent readings for the console's device charts: a bounded in-memory ring per (estate, device, point).

A pipeline Observer (downstream of the commit, like the metrics sink): it never blocks and never
raises. Memory is bounded three times: a sample is taken only when the value changed or `min_interval`
seconds passed since the ring's last one (a fire panel polled twice a second with hundreds of quiet
points stays small); each ring keeps at most `per_point` samples, fewer when the gateway has many points
(`max_samples` over the points its devices declare, but at least `min_per_point`); at most `max_series`
rings exist, readings of further points are counted in `dropped_series` and not kept. A ring is three
flat arrays (time, value, quality: 17 bytes a sample), not a deque of objects (~120 bytes): 10,000
devices stay at a few tens of MiB, and the memory is taken when a ring is created, never after.
The rings live as long as the process: history across restarts is InfluxDB's job, not this one's.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.alerts import Transition
from gateway.model import Item, Quality, Reading

__all__ = ["RecentReadings", "Sample"]

Key = tuple[str, str, str]  # estate, device, point


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float  # epoch s
    value: float | int | bool | str
    quality: str


_QUALITIES = ("good", "bad", "uncertain", "stale")
_QUALITY_INDEX = {q: _QUALITIES.index(q.value) if q.value in _QUALITIES else 0 for q in Quality}


def _as_sample(reading: Reading) -> Sample:
    return Sample(reading.ts_ns / 1e9, reading.value, reading.quality.value)


class _Ring:
    """A fixed-size ring of samples in flat arrays; values are kept as floats with the ring's value type
    (bool, int, float), or in a list where a point reports text."""

    __slots__ = ("appended", "count", "kind", "latest", "quality", "start", "texts", "ts", "unit", "values")

    def __init__(self, size: int, unit: str) -> None:
        self.ts = array("d", bytes(8 * size))
        self.values = array("d", bytes(8 * size))
        self.quality = bytearray(size)
        self.texts: list[str] | None = None  # created when the point first reports text
        self.kind: type = float
        self.start = self.count = 0
        self.unit = unit
        # The last reading appended, as given: what the next one is compared with (reading it back out
        # of the arrays cost more than the rest of `RecentReadings.add`); and the latest reading, sampled
        # or not. Readings, not Samples: no object is made per reading on the hot path (py-spy, issue 9).
        self.appended: Reading | None = None
        self.latest: Reading | None = None

    def __len__(self) -> int:
        return self.count

    def append(self, reading: Reading) -> None:
        self.appended = reading
        size = len(self.ts)
        at = (self.start + self.count) % size
        if self.count == size:
            self.start = (self.start + 1) % size
        else:
            self.count += 1
        self.ts[at] = reading.ts_ns / 1e9
        value = reading.value
        if isinstance(value, str) or self.kind is str:  # a point that reports text keeps its text
            if self.texts is None:
                self.texts = [""] * size
            self.texts[at] = str(value)
            self.kind = str
        else:
            self.values[at] = float(value)
            # the first value's type; a point that mixes them (1, then 1.5) is read back as floats
            self.kind = type(value) if self.count == 1 else self.kind if self.kind is type(value) else float
        self.quality[at] = _QUALITY_INDEX.get(reading.quality, 0)

    def _sample(self, index: int) -> Sample:
        at = (self.start + index) % len(self.ts)
        quality = _QUALITIES[self.quality[at]]
        if self.kind is str and self.texts is not None:
            return Sample(self.ts[at], self.texts[at], quality)
        value = self.values[at]
        typed: float | int | bool = (
            bool(value) if self.kind is bool else int(value) if self.kind is int else value
        )
        return Sample(self.ts[at], typed, quality)

    def since(self, ts: float) -> list[Sample]:
        return [self._sample(i) for i in range(self.count) if self.ts[(self.start + i) % len(self.ts)] >= ts]


class RecentReadings:
    """The last readings of every point, for charts and the overview's last values."""

    def __init__(
        self,
        per_point: int = 720,
        min_interval: float = 5.0,
        max_series: int = 20_000,
        expected_series: int = 0,
        max_samples: int = 3_000_000,
        min_per_point: int = 60,
    ) -> None:
        """`expected_series`: the points the devices declare; with `max_samples` it sizes each ring."""
        if expected_series:
            per_point = min(per_point, max(min_per_point, max_samples // expected_series))
        self.per_point, self.min_interval, self.max_series = per_point, min_interval, max_series
        self._rings: dict[Key, _Ring] = {}
        self._devices: dict[tuple[str, str], dict[str, _Ring]] = {}  # the same rings by device, then point
        self._min_interval_ns = int(min_interval * 1e9)
        self.dropped_series = 0

    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        for item in items:
            if isinstance(item, Reading):
                self.add(item)

    def add(self, reading: Reading) -> None:
        ring = self._rings.get((reading.estate, reading.device, reading.point))
        if ring is None:
            if len(self._rings) >= self.max_series:
                self.dropped_series += 1
                return
            ring = _Ring(self.per_point, reading.unit)
            self._rings[(reading.estate, reading.device, reading.point)] = ring
            self._devices.setdefault((reading.estate, reading.device), {})[reading.point] = ring
        ring.latest = reading
        last = ring.appended
        if (
            last is None
            or last.value != reading.value
            or last.quality is not reading.quality
            or reading.ts_ns - last.ts_ns >= self._min_interval_ns
        ):
            ring.append(reading)

    def series(self, estate: str, device: str, point: str, since: float) -> tuple[str, list[Sample]]:
        """(unit, samples at or after `since`), oldest first; the latest value is always included."""
        key = (estate, device, point)
        ring = self._rings.get(key)
        if ring is None:
            return "", []
        samples = ring.since(since)
        latest = _as_sample(ring.latest) if ring.latest is not None else None
        if latest is not None and latest.ts >= since and (not samples or latest.ts > samples[-1].ts):
            samples.append(latest)  # a repeat of the last sampled value, newer than it
        return ring.unit, samples

    def latest(self, estate: str, device: str) -> dict[str, Sample]:
        """The latest value of every point of a device that has reported, by point."""
        rings = self._devices.get((estate, device), {})
        return {point: _as_sample(ring.latest) for point, ring in rings.items() if ring.latest is not None}

    def unit(self, estate: str, device: str, point: str) -> str:
        ring = self._rings.get((estate, device, point))
        return ring.unit if ring is not None else ""

    def points(self, estate: str, device: str) -> list[str]:
        return sorted(k[2] for k in self._rings if k[0] == estate and k[1] == device)
