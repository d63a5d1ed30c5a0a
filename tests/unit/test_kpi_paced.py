"""The KPI engine's work over every estate, paced (`KpiEngine.paced`): the sinks' rounds (InfluxDB, MQTT),
which held the event loop ~160 ms at once for 250 estates late in a month, and the periodic save, whose
rows are now taken estate by estate across loop turns; and `Bucket.merge`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.alerts import DeviceInfo
from gateway.config.kpi import KpiConfig
from gateway.kpi import KpiEngine, KpiEstate
from gateway.kpi.buckets import Bucket, total
from gateway.model import ManualClock, Reading
from gateway.sinks.influx import kpi_lines
from gateway.sinks.lines import LineEncoder
from gateway.store import Store
from tests.integration.postgres import StoreFactory

TZ = ZoneInfo("Asia/Shanghai")


def test_merge_adds_every_part_and_copies_what_it_takes() -> None:
    a, b = Bucket(), Bucket()
    a.add("gates_ok_s", 10)
    a.sample("response_s", 30)
    a.alarm("gate-1/door_forced", 600, ("门被强行打开", "door forced"))
    b.add("gates_ok_s", 5)
    b.add("fire_alarms", 2)
    b.sample("response_s", 90)
    b.sample("repair_s", 3600)
    b.alarm("gate-1/door_forced", 600, ("other", "other"))
    b.alarm("gate-2/door_held", 1200, ("门未关", "door held"))
    merged = total([a, b])
    assert merged.sums == {"gates_ok_s": 15, "fire_alarms": 2}
    assert merged.samples == {"response_s": [30, 90], "repair_s": [3600]}
    assert merged.slots == {600: 2, 1200: 1}
    assert merged.alarms == {"gate-1/door_forced": 2, "gate-2/door_held": 1}
    assert merged.labels == {
        "gate-1/door_forced": ["门被强行打开", "door forced"],
        "gate-2/door_held": ["门未关", "door held"],
    }
    merged.samples["repair_s"].append(1)  # the total is a new bucket: its parts are not the days' own
    merged.samples["response_s"].append(1)
    assert b.samples["repair_s"] == [3600] and a.samples["response_s"] == [30]


def _engine(estates: list[str]) -> tuple[KpiEngine, ManualClock]:
    clock = ManualClock(datetime(2026, 11, 20, 8, tzinfo=TZ).timestamp())
    specs = [KpiEstate(e, devices=(DeviceInfo(e, "gate-1", "access_gate"),)) for e in estates]
    engine = KpiEngine(specs, KpiConfig(), clock)
    for hour, online in enumerate([True, False, True, True]):
        for number, estate in enumerate(estates):
            if number % 2 or hour:  # the estates differ, so a value under the wrong estate shows
                engine.observe([Reading(int(clock.now() * 1e9), estate, "gate-1", "online", online)], [])
        clock.advance(3600 + 86400)
    return engine, clock


async def _turns_during(work: asyncio.Task[list], counted: list[int]) -> list:  # type: ignore[type-arg]
    async def count() -> None:
        while True:
            counted[0] += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    try:
        return await work
    finally:
        counter.cancel()


async def test_paced_snapshot_has_the_same_values_and_gives_the_loop_back() -> None:
    estates = [f"e{i}" for i in range(6)]
    engine, _clock = _engine(estates)
    whole = engine.snapshot()
    assert {v.estate for v in whole} == set(estates)

    turns = [0]
    paced = await _turns_during(asyncio.create_task(engine.paced_snapshot(budget=0.0)), turns)
    assert paced == whole
    assert turns[0] >= len(estates)  # a turn for the loop after each estate

    turns = [0]
    at_once = await _turns_during(asyncio.create_task(engine.paced_snapshot(budget=60.0)), turns)
    assert at_once == whole
    assert turns[0] <= 1  # within the budget: held, as `snapshot` does (the counter's own first turn)


async def test_the_influx_round_lines_are_paced_too() -> None:
    """The sink's lines of a round (~4.5 us each, 23,000 at 250 estates) are not made in one turn either."""
    engine, _clock = _engine(["a", "b"])
    rows, encoder = engine.snapshot(), LineEncoder()
    whole = await kpi_lines(encoder, rows, 7, budget=60.0)
    assert len(whole) == len(rows) and all(line.startswith("kpi,") and line.endswith(" 7") for line in whole)
    turns = [0]
    assert await _turns_during(asyncio.create_task(kpi_lines(encoder, rows, 7, budget=0.0)), turns) == whole
    assert turns[0] >= len(rows)


async def test_paced_snapshot_of_some_estates() -> None:
    engine, _clock = _engine(["a", "b", "c"])
    some = await engine.paced_snapshot({"b", "gone"})  # an estate the engine does not know is skipped
    assert some == [v for v in engine.snapshot() if v.estate == "b"]
    assert some


class HeldStore:
    """A real store whose KPI writes wait until `release` is set (a slow or stuck database)."""

    def __init__(self, store: Store) -> None:
        self.store, self.entered, self.release = store, asyncio.Event(), asyncio.Event()

    async def save_kpi_buckets(
        self, rows: list[tuple[str, str, str, str]], deleted: list[tuple[str, str, str]]
    ) -> None:
        self.entered.set()
        await self.release.wait()
        await self.store.save_kpi_buckets(rows, deleted)

    async def load_kpi_buckets(self) -> list[tuple[str, str, str, str]]:
        return await self.store.load_kpi_buckets()


async def test_a_change_made_while_a_save_is_paced_is_saved_the_next_time(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    try:
        engine, clock = _engine(["a", "b", "c"])
        engine.store, engine.pace_budget = store, 0.0  # a loop turn after each estate

        async def meanwhile() -> None:  # runs at the first turn given back: after estate a's rows
            await asyncio.sleep(0)
            clock.advance(3600)
            engine.observe([Reading(int(clock.now() * 1e9), "a", "gate-1", "online", False)], [])

        change = asyncio.create_task(meanwhile())
        await engine.save()
        await change
        left = {("a", kind, key) for kind, key in engine._estates["a"].dirty}
        assert left, "a change after estate a was taken stays dirty, not cleared"
        assert not engine._estates["c"].dirty
        await engine.save()
        assert left <= {(e, kind, key) for e, kind, key, _ in await store.load_kpi_buckets()}
    finally:
        await store.close()


async def test_a_save_cancelled_midway_loses_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    try:
        engine, _clock = _engine(["a", "b"])
        held = HeldStore(store)
        engine.store = held
        dirty = {e: set(engine._estates[e].dirty) for e in ("a", "b")}
        assert all(dirty.values())
        saving = asyncio.create_task(engine.save())
        await asyncio.wait_for(held.entered.wait(), 5)
        assert not engine._estates["a"].dirty  # taken by the save in flight
        saving.cancel()  # a stop while the database is slow
        await asyncio.gather(saving, return_exceptions=True)
        assert all(keys <= engine._estates[e].dirty for e, keys in dirty.items())  # given back (and more: the
        # save closed the open intervals at now first)
        held.release.set()
        await engine.save()
        saved = {(e, kind, key) for e, kind, key, _ in await store.load_kpi_buckets()}
        kept = {(e, kind, key) for e, keys in dirty.items() for kind, key in keys  # hours past 48 h: pruned
                if kind == "day" or int(key) in engine._estates[e].hours}  # fmt: skip
        assert kept and kept <= saved
    finally:
        await store.close()
