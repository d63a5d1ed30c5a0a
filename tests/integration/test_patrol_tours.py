"""Guard tours end to end: checkpoint punches sent through the real Mosquitto by the access-gate and
patrol-tag simulators into a running App on a ManualClock. One night of four tours: on time, late
(alarm at the deadline, cleared by the late punch), out of order, missed (late, then missed at the end);
alarms become incidents; tours are kept in the store and served by GET /patrol/tours; the KPI engine
counts 巡更完成率 and punctuality per day."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.model import IncidentState
from gateway.runtime.broker import MosquittoProcess
from gateway.store import IncidentQuery
from tests.integration.patrol_site import OTHER, VIEWER, Site, local, patrol_site

pytestmark = pytest.mark.integration
MIN = 60.0


async def punch(s: Site, checkpoint: str, stamped: float | None = None) -> None:
    """The guard punches a checkpoint (now, or at `stamped`: a wand read earlier, uploaded now)."""
    tracker = s.app.rounds.patrol
    assert tracker is not None
    before = tracker.punches
    ts = s.clock.now() if stamped is None else stamped  # the reader's own time stamp
    if checkpoint == "north":
        event = {"kind": "card_granted", "card": "P-0001", "reader": 1, "ts": ts}
        await s.host.apply("gate-north", "event", event)
    else:
        event = {"kind": "patrol_tag", "tag": checkpoint, "guard": "wu.hao", "ts": ts}
        await s.host.apply("tags", "event", event)
    await s.until(lambda: tracker.punches > before, f"punch {checkpoint} processed")


async def at(s: Site, *when: int) -> list[tuple[str, bool, str]]:
    """Move the clock to a local time and evaluate: the patrol transitions that came of it."""
    s.clock.advance(local(*when) - s.clock.now())
    tracker = s.app.rounds.patrol
    assert tracker is not None
    return [(t.rule, t.active, t.key.rsplit(".", 1)[1]) for t in await tracker.evaluate()]


async def tours(s: Site, day: str) -> list[dict]:  # type: ignore[type-arg]
    reply = await s.api("GET", "/patrol/tours", VIEWER, params={"estate": "sunshine", "date": day})
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


async def test_a_night_of_tours_on_time_late_out_of_order_missed(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with patrol_site(broker, tmp_path, local(2026, 11, 24, 21, 50)) as s:
        tracker = s.app.rounds.patrol
        assert tracker is not None
        # 22:00 on time (the first punch within the tolerance before the start)
        assert await at(s, 2026, 11, 24, 21, 57) == []
        await punch(s, "north")
        assert await at(s, 2026, 11, 24, 22, 9) == []
        await punch(s, "B3")
        await at(s, 2026, 11, 24, 22, 21)
        await punch(s, "POOL")
        # 23:00 late: B3 not punched by 23:15 → alarm; punched at 23:18 → cleared
        await at(s, 2026, 11, 24, 23, 0)
        await punch(s, "north")
        assert await at(s, 2026, 11, 24, 23, 15, 30) == [("patrol_late", True, "b3")]
        assert await at(s, 2026, 11, 24, 23, 17) == []  # once
        await punch(s, "B3")
        await at(s, 2026, 11, 24, 23, 20)
        await punch(s, "POOL")
        # 00:00 out of order: the pool before building 3
        await at(s, 2026, 11, 25, 0, 1)
        await punch(s, "north")
        await at(s, 2026, 11, 25, 0, 6)
        await punch(s, "POOL")
        # 01:00 missed: the pool never punched
        await at(s, 2026, 11, 25, 1, 0)
        await punch(s, "north")
        await at(s, 2026, 11, 25, 1, 10)
        await punch(s, "B3")
        assert await at(s, 2026, 11, 25, 1, 26) == [("patrol_late", True, "pool")]
        assert await at(s, 2026, 11, 25, 1, 40) == [
            ("patrol_missed", True, "pool"), ("patrol_missed", False, "pool"), ("patrol_late", False, "pool"),
        ]  # fmt: skip
        await at(s, 2026, 11, 25, 2, 45)  # the 02:00 tour: nobody came (one late, one missed alarm)
        await night_is_recorded(s)


async def night_is_recorded(s: Site) -> None:
    """What the night left: tours in the store and the API, incidents, the day KPIs."""
    first = await tours(s, "2026-11-24")
    assert [(t["route"], t["status"]) for t in first] == [("night", "completed"), ("night", "late")]
    assert [c["status"] for c in first[1]["checkpoints"]] == ["on_time", "late", "on_time"]
    assert first[1]["checkpoints"][1]["punched_at"] == local(2026, 11, 24, 23, 17)
    assert first[0]["route_zh"] == "夜间巡逻" and first[0]["checkpoints"][1]["name_en"] == "Building 3 lobby"
    second = await tours(s, "2026-11-25")
    assert [t["status"] for t in second] == ["out_of_order", "missed", "missed"]
    assert [c["status"] for c in second[0]["checkpoints"]] == ["on_time", "skipped", "on_time"]
    assert [c["status"] for c in second[1]["checkpoints"]] == ["on_time", "on_time", "missed"]
    assert second[2]["started_at"] is None
    scoped = await s.api("GET", "/patrol/tours", OTHER, params={"estate": "sunshine"})
    assert scoped.status_code == 404

    incidents = await s.app.store.list_incidents(IncidentQuery(estates=frozenset({"sunshine"})))
    patrol = sorted((i.opened_at, i.rule, i.title_en) for i in incidents if i.rule.startswith("patrol_"))
    assert [(r, t.split(":")[0]) for _, r, t in patrol] == [
        ("patrol_late", "Patrol late"), ("patrol_out_of_order", "Patrol out of order"),
        ("patrol_late", "Patrol late"), ("patrol_missed", "Patrol checkpoint missed"),
        ("patrol_late", "Patrol not started"), ("patrol_missed", "Patrol missed"),
    ]  # fmt: skip
    assert "Night round" in patrol[0][2] and "Building 3 lobby" in patrol[0][2]
    late = min((i for i in incidents if i.rule == "patrol_late"), key=lambda i: i.opened_at)
    assert "夜间巡逻" in late.title and "3号楼大堂" in late.title and late.device == "tags"
    assert all(i.state is IncidentState.OPEN for i in incidents if i.rule.startswith("patrol_"))

    kpi = s.app.kpi
    day1 = kpi.day("sunshine", date(2026, 11, 24)).values
    assert (day1["patrol_tours"], day1["patrol_completion_rate"], day1["patrol_on_time_rate"]) == (
        2,
        100,
        50,
    )
    day2 = kpi.day("sunshine", date(2026, 11, 25)).values
    assert (day2["patrol_tours"], day2["patrol_completion_rate"]) == (
        3,
        0,
    ) and "patrol_on_time_rate" not in day2


async def test_an_open_tour_survives_a_restart(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with patrol_site(broker, tmp_path, local(2026, 11, 24, 21, 58)) as s:
        await at(s, 2026, 11, 24, 22, 0)
        await punch(s, "north")
        await at(s, 2026, 11, 24, 22, 5)
        restart_at = s.clock.now()
    async with patrol_site(broker, tmp_path, restart_at) as s:
        tracker = s.app.rounds.patrol
        assert tracker is not None and [t.status for t in tracker.tours.values()] == ["in_progress"]
        await at(s, 2026, 11, 24, 22, 16)
        await punch(s, "B3", stamped=local(2026, 11, 24, 22, 8))  # read at 22:08, uploaded at 22:16
        await at(s, 2026, 11, 24, 22, 19)
        await punch(s, "POOL")
        [tour] = await tours(s, "2026-11-24")
        assert tour["status"] == "completed"  # B3 on time: the reader's stamp counts, not the arrival
        assert tour["checkpoints"][1]["punched_at"] == local(2026, 11, 24, 22, 8)
