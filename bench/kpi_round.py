#!/usr/bin/env python3
"""The KPI engine's periodic work over every estate, and how long it holds the event loop: the InfluxDB
sink's KPI round (the figures of every estate, then their lines: `kpi_lines`) and a save of the changed
buckets, each done at once (the baseline: `snapshot` and every line in one turn, a save with
`pace_budget` infinite: what both did before) and paced (`paced_snapshot` and `kpi_lines` as the sink
calls them, a save with the default `PACE_BUDGET`), in the same run.

Method. One process, a `KpiEngine` for `--estates` estates (default 250, the scale target) of 16 devices
each (gates, ANPR barriers, a fire panel with 8 points, septic alarms, a generator), fed through its public
interfaces (`observe`, `on_incident_changes`) with a manual clock for `--days` days of a month (default
24: late in the month, when the month's figures merge the most day buckets). Each estate and day: a few
devices go offline and come back, gate and plate events every hour, `--alarms` alarms (default 12) that
open incidents acknowledged after 1-10 min and resolved after 10-120 min. The month is saved once to a
real SQLite store (not timed); each timed save follows an hour of the stream, a steady save's worth of
changes. In an event loop whose heap is frozen as `estate-gateway run` freezes it, each way runs
`--repeats` times, interleaved, beside a task that takes every loop turn it gets and records the gaps
between them: the longest gap is the longest an alarm arriving meanwhile would have waited for the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.alerts import DeviceInfo, Transition
from gateway.config.kpi import KpiConfig
from gateway.incidents import IncidentChange
from gateway.kpi import KpiEngine, KpiEstate
from gateway.model import DeviceEvent, Incident, IncidentState, ManualClock, Priority, Reading, TimelineEntry
from gateway.pacing import PACE_BUDGET
from gateway.sinks.influx import kpi_lines
from gateway.sinks.lines import LineEncoder
from gateway.store import SqliteStore

TZ = ZoneInfo("Asia/Shanghai")
ALARM_RULES = ("gate_door_forced", "gate_door_held", "septic_high_pressure", "generator_low_fuel", "fire")
EVENT_KINDS = ("card_granted", "card_denied", "plate_recognized", "plate_unknown")


def devices_of(estate: str) -> tuple[DeviceInfo, ...]:
    fire_points = tuple(f"1-00{i}.{s}" for i in range(1, 5) for s in ("fire", "fault"))
    return (
        *(DeviceInfo(estate, f"gate-{i}", "access_gate") for i in range(8)),
        *(DeviceInfo(estate, f"anpr-{i}", "plate_barrier") for i in range(2)),
        DeviceInfo(estate, "panel-1", "fire_panel", points=fire_points),
        *(DeviceInfo(estate, f"septic-{i}", "septic_pressure") for i in range(4)),
        DeviceInfo(estate, "gen-1", "generator", points=("control_mode", "fuel_level", "engine_state")),
    )


class Month:
    """The engine and the stream that fills it, day by day."""

    def __init__(self, estates: int, days: int, alarms: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.start = datetime(2026, 11, 1, tzinfo=TZ).timestamp()
        self.clock = ManualClock(self.start)
        self.specs = [KpiEstate(f"e{i:03d}", devices=devices_of(f"e{i:03d}")) for i in range(estates)]
        self.engine = KpiEngine(self.specs, KpiConfig(), self.clock)
        self.days, self.alarms, self.incident_id = days, alarms, 0

    def fill(self) -> None:
        for spec in self.specs:  # every device heard from at the start
            self._read([Reading(self._ns(), spec.id, d.device, "online", True) for d in spec.devices])
        for _day in range(self.days):
            plan = {spec.id: self._day_plan(spec) for spec in self.specs}
            for hour in range(24):
                self.clock.advance(3600)
                for spec in self.specs:
                    self._hour(spec, hour, plan[spec.id])

    def _day_plan(self, spec: KpiEstate) -> dict[int, list[tuple[str, str]]]:
        """hour → the alarms (device, rule) raised in it."""
        plan: dict[int, list[tuple[str, str]]] = {}
        for _ in range(self.alarms):
            device = self.rng.choice(spec.devices).device
            plan.setdefault(self.rng.randrange(24), []).append((device, self.rng.choice(ALARM_RULES)))
        return plan

    def _hour(self, spec: KpiEstate, hour: int, plan: dict[int, list[tuple[str, str]]]) -> None:
        estate, rng, ns = spec.id, self.rng, self._ns()
        events = [
            DeviceEvent(ns, estate, f"gate-{rng.randrange(8)}", rng.choice(EVENT_KINDS), {"direction": "in"})
            for _ in range(6)
        ]
        flaky = f"gate-{rng.randrange(8)}"
        self._read([*events, Reading(ns, estate, flaky, "online", hour % 6 != 3)])
        for device, rule in plan.get(hour, []):
            self._alarm(estate, device, rule)

    def _alarm(self, estate: str, device: str, rule: str) -> None:
        now, key = self.clock.now(), f"{estate}/{device}/{rule}"
        for active in (True, False):
            t = Transition(key, estate, device, rule, Priority.HIGH, active, now, None, "报警", "alarm")
            self.engine.observe([], [t])
        self.incident_id += 1
        inc = Incident(
            id=self.incident_id, estate=estate, device=device, rule=rule, alarm_key=key,
            priority=Priority.HIGH, state=IncidentState.OPEN, title=rule, opened_at=now, updated_at=now,
        )  # fmt: skip
        changed = self.engine.on_incident_changes
        changed([IncidentChange(inc, new=True, entries=[TimelineEntry(now, "opened")])])
        acked = now + self.rng.uniform(60, 600)
        inc.state, inc.acknowledged_at = IncidentState.ACKNOWLEDGED, acked
        changed([IncidentChange(inc, entries=[TimelineEntry(acked, "acknowledged")])])
        done = acked + self.rng.uniform(600, 7200)
        inc.state, inc.resolved_at, inc.cause = IncidentState.RESOLVED, done, "real"
        changed([IncidentChange(inc, entries=[TimelineEntry(done, "resolved")])])

    def _read(self, items: list[Any]) -> None:
        self.engine.observe(items, [])

    def _ns(self) -> int:
        return int(self.clock.now() * 1e9)


async def held(round_: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(longest gap between the loop turns of a task beside the round, the round's wall time), seconds."""
    gaps: list[float] = []
    done = False

    async def turns() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beside = asyncio.create_task(turns())
    await asyncio.sleep(0)
    started = time.perf_counter()
    await round_()
    took = time.perf_counter() - started
    done = True
    await beside
    return max(gaps), took


async def round_at_once(engine: KpiEngine, encoder: LineEncoder) -> None:
    """What the InfluxDB sink did before: every estate's figures, then every line, in one loop turn."""
    await kpi_lines(encoder, engine.snapshot(), 1, budget=float("inf"))


async def round_paced(engine: KpiEngine, encoder: LineEncoder) -> None:
    """What it does now (`InfluxSink.poll_kpis` on `App._owned_kpis`)."""
    await kpi_lines(encoder, await engine.paced_snapshot(), 1)


def an_hour(month: Month) -> None:
    """An hour of the stream: a steady save's changes (not timed)."""
    for spec in month.specs:
        month._hour(spec, 12, {})
    month.clock.advance(3600)


async def save_with(month: Month, budget: float) -> None:
    month.engine.pace_budget = budget
    try:
        await month.engine.save()
    finally:
        month.engine.pace_budget = PACE_BUDGET


async def measure(month: Month, repeats: int, store: SqliteStore) -> dict[str, list[tuple[float, float]]]:
    engine, encoder = month.engine, LineEncoder()
    engine.store = store
    await store.open()
    try:
        await engine.save()  # the month so far, once (not timed): then each save holds an hour's changes
        ways: dict[str, Callable[[], Awaitable[object]]] = {
            "round at once (baseline)": lambda: round_at_once(engine, encoder),
            "round paced": lambda: round_paced(engine, encoder),
            "save at once (baseline)": lambda: save_with(month, float("inf")),
            "save paced": lambda: save_with(month, PACE_BUDGET),
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for _ in range(repeats):  # interleaved, so drift hits both alike
            for name, way in ways.items():
                if name.startswith("save"):
                    an_hour(month)
                results[name].append(await held(way))
    finally:
        await store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estates", type=int, default=250)
    parser.add_argument("--days", type=int, default=24, help="days of the month filled (1-30)")
    parser.add_argument("--alarms", type=int, default=12, help="alarms per estate and day")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 estates, 5 days, 3 repeats")
    a = parser.parse_args()
    if a.quick:
        a.estates, a.days, a.repeats = 20, 5, 3
    month = Month(a.estates, min(max(a.days, 1), 30), a.alarms, a.seed)
    started = time.perf_counter()
    month.fill()
    fill_s = time.perf_counter() - started
    values = len(month.engine.snapshot())
    gc.collect()
    gc.freeze()  # as `estate-gateway run` does once ready (gateway/runtime/heap.py)
    with tempfile.TemporaryDirectory(prefix="kpi-round-") as tmp:
        results = asyncio.run(measure(month, a.repeats, SqliteStore(Path(tmp) / "kpi.db")))
    print(f"KPI round: {a.estates} estates x 16 devices, {a.days} days of November filled "
          f"({month.incident_id:,} incidents, fill {fill_s:.1f} s), {values:,} values a round, "
          f"{a.repeats} repeats, medians (max)")  # fmt: skip
    print(f"{'way':36s} {'longest loop hold':>22s} {'wall time':>22s}")
    for name, runs in results.items():
        holds, walls = [r[0] * 1000 for r in runs], [r[1] * 1000 for r in runs]
        print(f"{name:36s} {statistics.median(holds):12.1f} ms ({max(holds):5.1f}) "
              f"{statistics.median(walls):12.1f} ms ({max(walls):5.1f})")  # fmt: skip
    hold = {name: statistics.median(r[0] for r in runs) for name, runs in results.items()}
    for what in ("round", "save"):
        base, paced = (v for k, v in hold.items() if k.startswith(what))
        print(f"longest hold, {what} paced / at once: {paced / base:.1%}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"peak RSS {rss:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
