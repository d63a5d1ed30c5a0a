"""The KPI engine: a pipeline observer and incident listener that keeps per-estate accumulators, answers
queries for the API and the report, and gives the sink a snapshot. Saved to the store every
`save_interval` seconds and at close, so a restart continues today's and this month's figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple, Protocol, TypeVar

from gateway.alerts import DeviceInfo, Transition
from gateway.config.kpi import KpiConfig
from gateway.config.schema import GatewayConfig, RuleConfig
from gateway.incidents import IncidentChange
from gateway.kpi.buckets import HOUR, Bucket, total
from gateway.kpi.compute import kpis, rates, top_alarms
from gateway.kpi.estate import EstateKpi, KpiEstate, Pending
from gateway.model import Clock, Item
from gateway.pacing import PACE_BUDGET, paced

log = logging.getLogger(__name__)
PERIODS = ("day", "month", "rolling_24h")
_HOURS_KEPT = 48
_T = TypeVar("_T")


class KpiValue(NamedTuple):
    """One KPI of one estate for one period, as the sink writes it (measurement `kpi`): a row of the
    InfluxDB sink's KPI source as it is (23,000 a round at 250 estates: no copy into tuples)."""

    estate: str
    period: str  # day | month | rolling_24h
    name: str
    value: float


@dataclass(frozen=True)
class KpiSet:
    """Every KPI of one estate for one period: `label` is 2026-11-23, 2026-11 or rolling_24h."""

    estate: str
    period: str
    label: str
    start: float
    end: float
    values: dict[str, float]


@dataclass(frozen=True)
class MonthDetail:
    """What the monthly assessment needs beyond the month's KPIs."""

    kpis: KpiSet
    daily: list[tuple[date, dict[str, float]]]  # time-weighted rates per local day, up to today
    top: list[tuple[str, int, list[str]]]  # top-10 alarms: key, activations, [zh, en]
    fire_points: int


class KpiStore(Protocol):
    """The part of the store the engine uses (rows: estate, kind, key, JSON data)."""

    async def save_kpi_buckets(
        self, rows: list[tuple[str, str, str, str]], deleted: list[tuple[str, str, str]]
    ) -> None: ...

    async def load_kpi_buckets(self) -> list[tuple[str, str, str, str]]: ...


def estates_of(config: GatewayConfig, devices: Iterable[DeviceInfo]) -> list[KpiEstate]:
    by_estate: dict[str, list[DeviceInfo]] = {}
    for info in devices:
        by_estate.setdefault(info.estate, []).append(info)
    return [
        KpiEstate(
            e.id,
            e.name.zh,
            e.name.en,
            e.timezone,
            e.gate_hours,
            tuple(d.isoformat() for d in e.holidays),
            e.holiday_gate_hours,
            tuple(by_estate.get(e.id, ())),
        )
        for e in config.estates
    ]


class KpiEngine:
    """Per-estate KPIs, computed incrementally from the stream (see gateway/kpi/__init__ for names)."""

    def __init__(
        self,
        estates: Sequence[KpiEstate],
        config: KpiConfig,
        clock: Clock,
        store: KpiStore | None = None,
        offline_rules: Iterable[str] = (),
    ) -> None:
        self.config, self.clock, self.store = config, clock, store
        offline = frozenset(offline_rules) or frozenset(
            f"offline_{family}"
            for family in ("generator", "access_gate", "fire_panel", "septic_pressure", "plate_barrier")
        )
        self._estates = {e.id: EstateKpi(e, config, offline) for e in estates}
        self._offline = offline
        # Estates whose accumulators this instance keeps and saves (None: all). With several instances on
        # one database (gateway/cluster) each saves only its own, so none overwrites another's rows.
        self.owned: frozenset[str] | None = None
        self._read_at: dict[str, float] = {}  # others' estates: when refresh() last read them (monotonic)
        self._last = 0.0
        self._deleted: list[tuple[str, str, str]] = []
        self.pace_budget = PACE_BUDGET  # the longest `paced` work holds the event loop (s)
        self.saves = 0
        self.save_failures = 0

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig,
        devices: Iterable[DeviceInfo],
        clock: Clock,
        store: KpiStore | None = None,
        rules: Iterable[RuleConfig] = (),
    ) -> KpiEngine:
        """`rules`: the merged rule set, so site offline rules are known by their kind."""
        offline = [rule.id for rule in rules if rule.kind == "offline"]
        return cls(estates_of(config, devices), config.kpi, clock, store, offline)

    def _now(self) -> float:
        self._last = max(self._last, self.clock.now())  # an NTP step back must not un-spend time
        return self._last

    # -- input -----------------------------------------------------------------------------------
    def observe(self, items: Sequence[Item], transitions: Sequence[Transition]) -> None:
        """Pipeline observer: called after each committed batch."""
        now = self._now()
        estates = self._estates
        for item in items:
            estate = estates.get(item.estate)
            if estate is not None:
                estate.item(item, now)
        for transition in transitions:
            estate = estates.get(transition.estate)
            if estate is not None:
                estate.transition(transition, now)

    def on_incident_changes(self, changes: list[IncidentChange]) -> None:
        """Incident listener: called after each committed change."""
        self._now()
        for change in changes:
            estate = self._estates.get(change.incident.estate)
            if estate is not None:
                estate.incident(change)

    def patrol_tour(self, estate: str, due_at: float, completed: bool, on_time: bool) -> None:
        """A guard tour ended (gateway/patrol): counted in the day (and hour) it was due."""
        self._now()
        acc = self._estates.get(estate)
        if acc is None:
            return
        acc.count(due_at, "patrol_tours")
        if completed:
            acc.count(due_at, "patrol_tours_completed")
        if completed and on_time:
            acc.count(due_at, "patrol_tours_on_time")

    def restore_active(self, keys: Iterable[str]) -> None:
        """Alarm keys still active at start ("estate/device/rule[/point]", from IncidentService.start)."""
        now = self._now()
        for key in keys:
            parts = key.split("/", 3)
            estate = self._estates.get(parts[0])
            if estate is not None and len(parts) >= 3:
                estate.restore_active([(parts[1], parts[2], key)], now)

    # -- queries ---------------------------------------------------------------------------------
    @property
    def estates(self) -> list[str]:
        return list(self._estates)

    def estate(self, estate: str) -> KpiEstate | None:
        found = self._estates.get(estate)
        return found.spec if found is not None else None

    def today(self, estate: str, now: float | None = None) -> date:
        return self._estates[estate].calendar.day_of(self._now() if now is None else now)

    def _settled(self, estate: str, now: float | None) -> tuple[EstateKpi, float]:
        acc = self._estates[estate]
        now = self._now() if now is None else now
        acc.settle(now)
        return acc, now

    def _set(self, acc: EstateKpi, period: str, label: str, span: tuple[float, float], bucket: Bucket,
             now: float) -> KpiSet:  # fmt: skip
        start, end = span
        elapsed = max(0.0, min(now, end) - start)
        overdue = acc.overdue(now, start, end)
        values = kpis(bucket, elapsed, acc.fire_points, self.config.flood_alarms_per_10min, overdue)
        return KpiSet(acc.spec.id, period, label, start, end, values)

    def day(self, estate: str, day: date | None = None, now: float | None = None) -> KpiSet:
        acc, now = self._settled(estate, now)
        day = day or acc.calendar.day_of(now)
        bucket = acc.days.get(day, Bucket())
        return self._set(acc, "day", day.isoformat(), acc.calendar.day_span(day), bucket, now)

    def month(self, estate: str, year: int | None = None, month: int | None = None,
              now: float | None = None) -> KpiSet:  # fmt: skip
        acc, now = self._settled(estate, now)
        if year is None or month is None:
            today = acc.calendar.day_of(now)
            year, month = today.year, today.month
        bucket = total([acc.days[d] for d in acc.calendar.days_of_month(year, month) if d in acc.days])
        return self._set(acc, "month", f"{year:04d}-{month:02d}", acc.calendar.month_span(year, month),
                         bucket, now)  # fmt: skip

    def rolling(self, estate: str, now: float | None = None) -> KpiSet:
        """The current hour and the 23 before it."""
        acc, now = self._settled(estate, now)
        first = int(now // HOUR) * HOUR - 23 * HOUR
        bucket = total([b for hour, b in acc.hours.items() if hour >= first])
        return self._set(acc, "rolling_24h", "rolling_24h", (first, now), bucket, now)

    def month_detail(self, estate: str, year: int, month: int, now: float | None = None) -> MonthDetail:
        kpi_set = self.month(estate, year, month, now)
        acc = self._estates[estate]
        today = acc.calendar.day_of(self._last if now is None else now)
        days = [d for d in acc.calendar.days_of_month(year, month) if d <= today]
        daily = [(d, rates(acc.days[d]) if d in acc.days else {}) for d in days]
        bucket = total([acc.days[d] for d in days if d in acc.days])
        return MonthDetail(kpi_set, daily, top_alarms(bucket), acc.fire_points)

    def snapshot(self, now: float | None = None) -> list[KpiValue]:
        """Every KPI of every estate for today, this month and the rolling 24 h."""
        now = self._now() if now is None else now
        return [value for estate in self._estates for value in self.estate_values(estate, now)]

    def estate_values(self, estate: str, now: float | None = None) -> list[KpiValue]:
        """One estate's KPIs for today, this month and the rolling 24 h."""
        out: list[KpiValue] = []
        for kpi_set in (self.day(estate, None, now), self.month(estate, None, None, now),
                        self.rolling(estate, now)):  # fmt: skip
            out.extend(KpiValue(estate, kpi_set.period, n, v) for n, v in kpi_set.values.items())
        return out

    async def paced_snapshot(
        self, estates: Collection[str] | None = None, budget: float | None = None
    ) -> list[KpiValue]:
        """`snapshot` of `estates` (None: all) for the sinks' rounds, `paced`."""
        known = [e for e in (self._estates if estates is None else estates) if e in self._estates]
        return [value for values in await self.paced(known, self.estate_values, budget) for value in values]

    async def paced(
        self, estates: Iterable[str], compute: Callable[[str], _T], budget: float | None = None
    ) -> list[_T]:
        """`compute(estate)` for each estate, `gateway.pacing.paced` (a month is 28-31 day buckets merged
        per estate: 250 estates late in a month held the loop ~160 ms at once). Each estate is computed in
        one go, at its own `now`."""
        return await paced(estates, compute, self.pace_budget if budget is None else budget)

    # -- persistence -----------------------------------------------------------------------------
    async def load(self, estates: Collection[str] | None = None) -> None:
        """Continue from what the store holds (call once, after the store is open; or for estates that
        arrive from another instance, after `reset`)."""
        if self.store is None:
            return
        for estate, kind, key, data in await self.store.load_kpi_buckets():
            acc = self._estates.get(estate)
            if acc is None or (estates is not None and estate not in estates):
                continue
            if kind == "state" and key == "pending":
                for incident_id, (opened_at, priority, acked) in _pending_rows(data):
                    acc.pending.setdefault(incident_id, Pending(opened_at, priority, acked))
            elif kind == "day":
                acc.days.setdefault(date.fromisoformat(key), Bucket()).merge(Bucket.from_json(data))
            elif kind == "hour":
                acc.hours.setdefault(int(key), Bucket()).merge(Bucket.from_json(data))

    async def save(self) -> None:
        """Write the buckets changed since the last save (after closing open intervals at now)."""
        now = self._now()
        if self.store is None:  # nothing to write; still drop what is past retention
            for estate_id, acc in self._estates.items():
                self._prune(estate_id, acc, now)
            self._deleted.clear()
            return
        for estate_id, acc in self._estates.items():  # others' estates: theirs to save
            if self.owned is not None and estate_id not in self.owned:
                acc.dirty.clear()
        taken: dict[str, set[tuple[str, str]]] = {}  # estate → the dirty keys its rows below carry

        def rows_of(estate_id: str) -> list[tuple[str, str, str, str]]:
            """One estate's changed buckets, taken in one go (a change after this turn stays dirty)."""
            acc = self._estates[estate_id]
            acc.settle(now)
            self._prune(estate_id, acc, now)
            taken[estate_id], acc.dirty = acc.dirty, set()
            rows = []
            for kind, key in sorted(taken[estate_id]):
                bucket = acc.days.get(date.fromisoformat(key)) if kind == "day" else acc.hours.get(int(key))
                if bucket is not None:
                    rows.append((estate_id, kind, key, bucket.to_json()))
            rows.append((estate_id, "state", "pending", _pending_json(acc.pending)))
            return rows

        mine = [e for e in self._estates if self.owned is None or e in self.owned]
        deleted: list[tuple[str, str, str]] = []
        try:
            rows = [row for estate_rows in await self.paced(mine, rows_of) for row in estate_rows]
            deleted, self._deleted = self._deleted, []
            await self.store.save_kpi_buckets(rows, deleted)
        except BaseException:  # failed or cancelled (a stop mid-save): what was taken is saved next time
            for estate_id, keys in taken.items():
                self._estates[estate_id].dirty |= keys
            self._deleted = deleted + self._deleted
            raise
        self.saves += 1

    async def refresh(self, estates: Collection[str]) -> None:
        """Before answering for estates another gateway instance owns (gateway/cluster): their figures as
        that instance last saved them (at most `save_interval` old; read again after that long)."""
        if self.owned is None or self.store is None:
            return
        now = self.clock.monotonic()
        stale = [e for e in estates if e not in self.owned and e in self._estates
                 and now - self._read_at.get(e, -1e9) >= self.config.save_interval]  # fmt: skip
        if not stale:
            return
        self.reset(stale)
        await self.load(stale)
        for estate in stale:
            self._read_at[estate] = now

    def reset(self, estates: Collection[str]) -> None:
        """Empty these estates' accumulators (they moved to or from another instance; the store has them)."""
        for estate_id in estates:
            acc = self._estates.get(estate_id)
            if acc is not None:
                self._estates[estate_id] = EstateKpi(acc.spec, self.config, self._offline)
        self._deleted = [row for row in self._deleted if row[0] not in estates]

    def _prune(self, estate_id: str, acc: EstateKpi, now: float) -> None:
        oldest_day = acc.calendar.day_of(now) - timedelta(days=self.config.retention_days)
        for day in [d for d in acc.days if d < oldest_day]:
            del acc.days[day]
            self._deleted.append((estate_id, "day", day.isoformat()))
        oldest_hour = int(now // HOUR) * HOUR - _HOURS_KEPT * HOUR
        for hour in [h for h in acc.hours if h < oldest_hour]:
            del acc.hours[hour]
            self._deleted.append((estate_id, "hour", str(hour)))

    async def run(self) -> None:
        """Save every `save_interval` seconds until cancelled; a failed save is retried at the next."""
        while True:
            await asyncio.sleep(self.config.save_interval)
            try:
                await self.save()
            except Exception:
                self.save_failures += 1
                log.exception(
                    "kpi: saving the accumulators failed; retrying in %.0fs", self.config.save_interval
                )

    async def close(self) -> None:
        """Save once more (at shutdown, before the store closes)."""
        await self.save()


def _pending_json(pending: dict[int, Pending]) -> str:
    return json.dumps({str(k): p.to_list() for k, p in pending.items()})


def _pending_rows(data: str) -> list[tuple[int, tuple[float, str, bool]]]:
    raw = json.loads(data)
    return [(int(k), (float(v[0]), str(v[1]), bool(v[2]))) for k, v in raw.items()]
