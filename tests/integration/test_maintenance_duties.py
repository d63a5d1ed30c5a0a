"""Maintenance duties end to end on a running App (ManualClock) with the Modbus generator simulator:
an overdue monthly test run raises ONE alarm; the generator's own readings (mains fails, the engine
runs past `kpi.test_run_minutes`) close the duty, record it as detected and clear the alarm; an
inspection recorded through the API (operator+, audited, scoped) closes its duty; the duties route shows
due dates and status. Then the store round trips of tours, duty states and records on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.runtime.broker import MosquittoProcess
from gateway.store import IncidentQuery
from gateway.store.duties import MaintenanceRecord
from tests.integration.patrol_site import OPERATOR, OTHER, VIEWER, Site, local, patrol_site
from tests.integration.postgres import StoreFactory

MAINTENANCE = """\
    maintenance:
      remind_role: engineer_on_call
      duties:
        - {id: gen-test, kind: generator_test_run, device: gen-1, every_months: 1, last_done: 2026-10-01,
           name: {zh: 1号发电机月度试机, en: Generator 1 monthly test run}}
        - {id: fire-annual, kind: fire_annual_inspection, every_months: 12, last_done: 2025-11-01,
           name: {zh: 消防年检, en: Fire annual inspection}}
        - {id: gen-service, kind: generator_service, device: gen-1, every_run_hours: 250,
           name: {zh: 1号发电机保养, en: Generator 1 service}}
"""


@pytest.mark.integration
async def test_generator_test_run_closes_its_duty_and_an_inspection_is_recorded(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    kpi = "kpi: {test_run_minutes: 15}"
    async with patrol_site(broker, tmp_path, local(2026, 11, 24, 10), MAINTENANCE, kpi) as s:
        tracker = s.app.rounds.maintenance
        assert tracker is not None
        await s.until(
            lambda: tracker.states[("sunshine", "gen-service")].run_hours is not None, "run-hours read"
        )
        for _ in range(20):  # many evaluations: one alarm per overdue duty
            await tracker.evaluate()
        overdue = await s.app.store.list_incidents(IncidentQuery(estates=frozenset({"sunshine"})))
        assert sorted((i.rule, i.device, i.title_en) for i in overdue) == [
            ("maintenance_overdue", "gen-1",
             "Maintenance overdue: Generator 1 monthly test run (due 2026-11-01)"),
            ("maintenance_overdue", "maintenance",
             "Maintenance overdue: Fire annual inspection (due 2026-11-01)"),
        ]  # fmt: skip
        duties = (await s.api("GET", "/maintenance/duties", VIEWER, params={"estate": "sunshine"})).json()
        assert {d["id"]: d["status"] for d in duties} == {
            "gen-test": "overdue", "fire-annual": "overdue", "gen-service": "ok"}  # fmt: skip
        service = next(d for d in duties if d["id"] == "gen-service")
        assert service["run_hours"] == 120.0 and service["due_run_hours"] == 370.0

        # The monthly test run, from the generator's readings: mains fails, the engine starts and runs.
        await s.host.apply("gen-1", "mains", {"ok": False})
        await s.until(lambda: "sunshine/gen-1" in tracker.runs.runs, "engine running seen", 15)
        s.clock.advance(16 * 60)
        await s.until(lambda: tracker.runs.runs.get("sunshine/gen-1", [0, 0])[1] == 1.0, "run counted", 5)
        cleared = await tracker.evaluate()
        assert [(t.rule, t.device, t.active) for t in cleared] == [("maintenance_overdue", "gen-1", False)]
        [record] = await s.app.store.list_maintenance_records("sunshine", "gen-test")
        assert (record.by, record.how) == ("gateway", "detected")
        assert s.app.kpi.day("sunshine").values["generator_test_runs"] == 1  # the same rule counted it

        # The annual inspection is recorded by hand, by an operator of this estate.
        path = "/maintenance/duties/sunshine/fire-annual/complete"
        body = {"note": "维保公司年检合格，报告编号 2026-118", "done_at": "2026-11-24T09:30:00"}
        assert (await s.api("POST", path, VIEWER, json=body)).status_code == 403
        assert (await s.api("POST", path, OTHER, json=body)).status_code == 404
        assert (
            await s.api("POST", "/maintenance/duties/sunshine/nope/complete", json=body)
        ).status_code == 404
        reply = await s.api("POST", path, json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["by"] == "control-room" and reply.json()["done_at"] == local(2026, 11, 24, 9, 30)
        duties = (await s.api("GET", "/maintenance/duties", VIEWER, params={"estate": "sunshine"})).json()
        fire = next(d for d in duties if d["id"] == "fire-annual")
        assert (fire["status"], fire["due_at"], fire["alarmed"]) == ("ok", local(2027, 11, 24, 9, 30), False)
        assert fire["last_record"]["note"].startswith("维保公司年检合格")
        incidents = await s.app.store.list_incidents(IncidentQuery(estates=frozenset({"sunshine"})))
        assert all(not i.active for i in incidents if i.rule == "maintenance_overdue")
        audit = [a for a in await s.app.store.list_audit(None) if a.action == "maintenance_complete"]
        assert [(a.actor, a.target, a.outcome) for a in audit][:1] == [("control-room", "fire-annual", "ok")]
        assert (
            await s.api("GET", "/maintenance/duties", OTHER, params={"estate": "sunshine"})
        ).status_code == 404
        refused = await s.api("POST", "/maintenance/duties/sunshine/gen-test/complete", json={"note": "x"})
        assert refused.status_code == 409  # a test run is detected, never ticked by hand
        await estate_page_shows_both(s)


async def estate_page_shows_both(s: Site) -> None:
    """The estate page shows both sections, in Chinese by default and in English on request."""
    patrol = s.app.rounds.patrol
    assert patrol is not None
    s.clock.advance(local(2026, 11, 24, 22, 0) - s.clock.now())
    await patrol.evaluate()  # the 22:00 tour is due
    page = await s.api("GET", "/console/estates/sunshine", VIEWER)
    assert page.status_code == 200
    html = page.text
    for text in ('id="patrol"', "今日巡更", "夜间巡逻", "待开始", "北门岗亭", 'id="maintenance"',
                 "维保计划", "消防年检", "人工登记", "自动检测", "正常", "运行 370 小时"):  # fmt: skip
        assert text in html, text
    assert 'class="record-duty"' not in html  # a viewer records nothing
    english = await s.api("GET", "/console/estates/sunshine", OPERATOR, headers={"Cookie": "eg_lang=en"})
    for text in ("Today&#39;s guard tours", "Night round", "Maintenance duties", "Fire annual inspection",
                 'data-duty="fire-annual"', 'class="record-duty"'):  # fmt: skip
        assert text in english.text, text


async def test_tours_duties_and_records_round_trip(make_store: StoreFactory) -> None:
    store = make_store("rounds")
    await store.open()
    try:
        tour = json.dumps({"status": "due", "名": "夜间巡逻"}, ensure_ascii=False)
        await store.save_patrol_tours(
            [("sunshine", "night", 100.0, "due", tour), ("maple", "day", 150.0, "due", "{}")]
        )
        await store.save_patrol_tours([("sunshine", "night", 100.0, "completed", '{"status": "completed"}')])
        assert await store.load_patrol_tours(None, 0, 200) == [
            ("sunshine", "night", 100.0, "completed", '{"status": "completed"}'),
            ("maple", "day", 150.0, "due", "{}"),
        ]  # fmt: skip
        assert await store.load_patrol_tours(frozenset({"maple"}), 0, 200) == [
            ("maple", "day", 150.0, "due", "{}")
        ]
        assert await store.load_patrol_tours(None, 100.5, 150.0) == []  # [since, until)
        await store.save_duty_states([("sunshine", "ext", '{"alarmed": true}'), ("sunshine", "gen", "{}")])
        await store.save_duty_states([("sunshine", "ext", '{"alarmed": false}')])
        assert await store.load_duty_states() == [
            ("sunshine", "ext", '{"alarmed": false}'),
            ("sunshine", "gen", "{}"),
        ]
        first = await store.add_maintenance_record(
            MaintenanceRecord(None, "sunshine", "ext", 10.0, "刘洋", "recorded", "24 具合格 ✓", 11.0)
        )
        second = await store.add_maintenance_record(
            MaintenanceRecord(None, "sunshine", "gen", 20.0, "gateway", "detected", "", 21.0)
        )
        assert (first.id, second.id) == (1, 2)
        assert await store.list_maintenance_records("sunshine") == [second, first]
        assert await store.list_maintenance_records("sunshine", "ext") == [first]
        assert await store.list_maintenance_records("maple") == []
    finally:
        await store.close()
    again = make_store("rounds")  # a restart: the same file or schema
    await again.open()
    try:
        assert len(await again.list_maintenance_records("sunshine", limit=1)) == 1
        assert [r[3] for r in await again.load_patrol_tours(None, 0, 200)] == ["completed", "due"]
    finally:
        await again.close()
