"""Recent readings for the console's device charts: a bounded in-memory ring per (estate, device, point).

A pipeline Observer (downstream of the commit, like the metrics sink): it never blocks and never
raises. Memory is bounded twice: each ring keeps at most `per_point` samples, and a sample is taken
only when the value changed or `min_interval` seconds passed since the ring's last one (a fire panel
polled twice a second with hundreds of quiet points stays small); at most `max_series` rings exist,
readings of further points are counted in `dropped_series` and not kept. The rings live as long as the
process: history across restarts is InfluxDB's job, not this one's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.alerts import Transition
from gateway.model import Item, Reading

__all__ = ["RecentReadings", "Sample"]

Key = tuple[str, str, str]  # estate, device, point


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float  # epoch s
    value: float | int | bool | str
    quality: str


class _Ring:
    __slots__ = ("samples", "unit")

    def __init__(self, size: int, unit: str) -> None:
        self.samples: deque[Sample] = deque(maxlen=size)
        self.unit = unit


class RecentReadings:
    """The last readings of every point, for charts and the overview's last values."""

    def __init__(self, per_point: int = 720, min_interval: float = 5.0, max_series: int = 20_000) -> None:
        self.per_point, self.min_interval, self.max_series = per_point, min_interval, max_series
        self._rings: dict[Key, _Ring] = {}
        # Every point's latest value, sampled into its ring or not, by device then point.
        self._latest: dict[tuple[str, str], dict[str, Sample]] = {}
        self.dropped_series = 0

    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        for item in items:
            if isinstance(item, Reading):
                self.add(item)

    def add(self, reading: Reading) -> None:
        key = (reading.estate, reading.device, reading.point)
        sample = Sample(reading.ts_ns / 1e9, reading.value, reading.quality.value)
        ring = self._rings.get(key)
        if ring is None:
            if len(self._rings) >= self.max_series:
                self.dropped_series += 1
                return
            ring = self._rings[key] = _Ring(self.per_point, reading.unit)
        self._latest.setdefault((reading.estate, reading.device), {})[reading.point] = sample
        last = ring.samples[-1] if ring.samples else None
        if (
            last is None
            or last.value != sample.value
            or last.quality != sample.quality
            or sample.ts - last.ts >= self.min_interval
        ):
            ring.samples.append(sample)

    def series(self, estate: str, device: str, point: str, since: float) -> tuple[str, list[Sample]]:
        """(unit, samples at or after `since`), oldest first; the latest value is always included."""
        key = (estate, device, point)
        ring = self._rings.get(key)
        if ring is None:
            return "", []
        samples = [s for s in ring.samples if s.ts >= since]
        latest = self._latest.get((estate, device), {}).get(point)
        if latest is not None and latest.ts >= since and (not samples or latest.ts > samples[-1].ts):
            samples.append(latest)  # a repeat of the last sampled value, newer than it
        return ring.unit, samples

    def latest(self, estate: str, device: str) -> dict[str, Sample]:
        """The latest value of every point of a device that has reported, by point."""
        return dict(self._latest.get((estate, device), {}))

    def unit(self, estate: str, device: str, point: str) -> str:
        ring = self._rings.get((estate, device, point))
        return ring.unit if ring is not None else ""

    def points(self, estate: str, device: str) -> list[str]:
        return sorted(k[2] for k in self._rings if k[0] == estate and k[1] == device)
