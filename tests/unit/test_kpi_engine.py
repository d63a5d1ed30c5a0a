"""The KPI engine on scripted days, through its public interfaces (observe, on_incident_changes) with a
ManualClock; every expectation is worked out by hand in the comment beside it."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.alerts import DeviceInfo, Transition
from gateway.config.kpi import KpiConfig
from gateway.config.schema import GatewayConfig
from gateway.incidents import IncidentChange
from gateway.kpi import KpiEngine, KpiEstate
from gateway.model import (
    DeviceEvent,
    Incident,
    IncidentState,
    ManualClock,
    Priority,
    Reading,
    TimelineEntry,
    Value,
)
from gateway.store import Store
from tests.integration.postgres import StoreFactory

TZ = ZoneInfo("Asia/Shanghai")
ESTATE = "sunshine"
GATE = DeviceInfo(ESTATE, "gate-1", "access_gate")
PANEL = DeviceInfo(
    ESTATE,
    "panel-1",
    "fire_panel",
    points=tuple(f"1-00{i}.{s}" for i in range(1, 5) for s in ("fire", "fault")),
)
GEN = DeviceInfo(ESTATE, "gen-1", "generator", points=("control_mode", "fuel_level", "engine_state"))
CAM = DeviceInfo(ESTATE, "cam-1", "plate_barrier")


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


class Day:
    """A scripted estate: a clock, an engine, and helpers that speak through the public interfaces."""

    def __init__(self, *devices: DeviceInfo, start: str = "2026-11-23T00:00", store: Store | None = None):
        self.clock = ManualClock(local(start))
        spec = KpiEstate(ESTATE, "阳光花园", "Sunshine Garden", devices=devices)
        self.engine = KpiEngine([spec], KpiConfig(), self.clock, store)

    def at(self, text: str) -> None:
        self.clock.advance(local(text) - self.clock.now())

    def read(self, device: str, point: str, value: Value) -> None:
        self.engine.observe([Reading(int(self.clock.now() * 1e9), ESTATE, device, point, value)], [])

    def event(self, device: str, kind: str, **attrs: object) -> None:
        self.engine.observe([DeviceEvent(int(self.clock.now() * 1e9), ESTATE, device, kind, dict(attrs))], [])

    def alarm(self, device: str, rule: str, active: bool, point: str = "", chattering: bool = False) -> None:
        key = f"{ESTATE}/{device}/{rule}" + (f"/{point}" if point else "")
        t = Transition(
            key, ESTATE, device, rule, Priority.MEDIUM, active, self.clock.now(), None, f"{rule} 报警",
            f"{rule} alarm", chattering=chattering,
        )  # fmt: skip
        self.engine.observe([], [t])


def incident(iid: int, priority: Priority, opened_at: float, rule: str = "gate_door_forced") -> Incident:
    return Incident(
        id=iid, estate=ESTATE, device="gate-1", rule=rule, alarm_key=f"{ESTATE}/gate-1/{rule}",
        priority=priority, state=IncidentState.OPEN, title="t", opened_at=opened_at, updated_at=opened_at,
    )  # fmt: skip


def opened(engine: KpiEngine, inc: Incident) -> None:
    engine.on_incident_changes(
        [IncidentChange(inc, new=True, entries=[TimelineEntry(inc.opened_at, "opened")])]
    )


def acked(engine: KpiEngine, inc: Incident, at: float) -> None:
    inc.state, inc.acknowledged_at = IncidentState.ACKNOWLEDGED, at
    engine.on_incident_changes([IncidentChange(inc, entries=[TimelineEntry(at, "acknowledged", "li")])])


def resolved(engine: KpiEngine, inc: Incident, at: float, cause: str = "real") -> None:
    inc.state, inc.resolved_at, inc.cause = IncidentState.RESOLVED, at, cause
    engine.on_incident_changes([IncidentChange(inc, entries=[TimelineEntry(at, "resolved", "li")])])


def test_one_device_offline_two_hours_of_24() -> None:
    day = Day(GATE)
    day.read("gate-1", "online", True)  # 00:00 heard of, intact
    day.at("2026-11-23T10:00")
    day.read("gate-1", "online", False)
    day.at("2026-11-23T12:00")
    day.read("gate-1", "online", True)
    day.at("2026-11-24T00:00")
    values = day.engine.day(ESTATE, date(2026, 11, 23)).values
    assert values["equipment_intact_rate"] == pytest.approx(100 * 22 / 24, abs=1e-3)  # 91.667
    assert "generator_readiness" not in values  # no generator: nothing to measure, not 0 or 100


def test_offline_from_the_heartbeat_alarm_counts_too() -> None:
    day = Day(GATE)
    day.read("gate-1", "door_open", False)
    day.at("2026-11-23T06:00")
    day.alarm("gate-1", "offline_access_gate", True)  # MQTT heartbeat absence: the engine's transition
    day.at("2026-11-23T12:00")
    day.alarm("gate-1", "offline_access_gate", False)
    values = day.engine.day(ESTATE, date(2026, 11, 23), now=local("2026-11-23T12:00")).values
    assert values["equipment_intact_rate"] == pytest.approx(50.0)  # 6 h of 12 h elapsed


def test_fire_point_in_fault_30_minutes() -> None:
    day = Day(PANEL)
    day.read("panel-1", "1-001.fire", False)  # the panel speaks: its 4 detectors are known, intact
    day.at("2026-11-23T08:00")
    day.alarm("panel-1", "fire_point_fault", True, "1-001.fault")
    day.at("2026-11-23T08:30")
    day.alarm("panel-1", "fire_point_fault", False, "1-001.fault")
    day.at("2026-11-24T00:00")
    values = day.engine.day(ESTATE, date(2026, 11, 23)).values
    # 4 points x 1440 min, one impaired for 30 min: (5760 - 30) / 5760
    assert values["fire_intact_rate"] == pytest.approx(100 * 5730 / 5760, abs=1e-3)  # 99.479
    # a fault alarm on the panel: the one device is not intact for 30 of 1440 min
    assert values["equipment_intact_rate"] == pytest.approx(100 * 1410 / 1440, abs=1e-3)
    assert values["fire_alarms"] == 0
    assert values["fire_alarms_per_1000_points"] == 0


def test_panel_offline_impairs_every_point_and_fire_alarms_per_1000_points() -> None:
    day = Day(PANEL)
    day.read("panel-1", "online", True)
    day.at("2026-11-23T06:00")
    day.alarm("panel-1", "fire_point_fire", True, "1-002.fire")
    day.alarm("panel-1", "fire_point_fire", False, "1-002.fire")
    day.read("panel-1", "online", False)
    day.at("2026-11-23T12:00")
    values = day.engine.day(ESTATE, date(2026, 11, 23)).values
    assert values["fire_intact_rate"] == pytest.approx(50.0)  # all 4 points out for 6 of 12 h
    assert values["fire_alarms"] == 1
    assert values["fire_alarms_per_1000_points"] == pytest.approx(250.0)  # 1 alarm / 4 points x 1000


def test_mtta_p90_and_on_time_response() -> None:
    day = Day(GATE)
    engine, t0 = day.engine, local("2026-11-23T09:00")
    delays = {1: (Priority.CRITICAL, 30.0), 2: (Priority.CRITICAL, 50.0), 3: (Priority.CRITICAL, 120.0),
              4: (Priority.HIGH, 100.0)}  # fmt: skip
    incidents = {i: incident(i, p, t0 + i) for i, (p, _) in delays.items()}
    for inc in incidents.values():
        opened(engine, inc)
    for i, (_, delay) in delays.items():
        acked(engine, incidents[i], incidents[i].opened_at + delay)
    acked(engine, incidents[1], incidents[1].opened_at + 500)  # a second ack (re-activation) is no sample
    values = engine.day(ESTATE, date(2026, 11, 23), now=t0 + 3600).values
    assert values["mtta_s_critical"] == pytest.approx((30 + 50 + 120) / 3, abs=1e-3)  # 66.667
    assert values["mtta_s_critical_p90"] == 120.0  # nearest rank: ceil(0.9 x 3) = 3rd of [30, 50, 120]
    assert values["mtta_s_high"] == 100.0
    assert values["mtta_s"] == pytest.approx(300 / 4)
    assert values["mtta_s_p90"] == 120.0  # ceil(0.9 x 4) = 4th of [30, 50, 100, 120]
    # SLA critical 60 s (30, 50 on time; 120 late), high 180 s (100 on time): 3 of 4
    assert values["on_time_response_rate"] == pytest.approx(75.0)
    assert values["incidents"] == 4
    assert values["incidents_critical"] == 3


def test_unacknowledged_past_its_sla_is_late_and_resolution_times() -> None:
    day = Day(GATE)
    engine, t0 = day.engine, local("2026-11-23T09:00")
    late = incident(1, Priority.HIGH, t0)
    fault = incident(2, Priority.LOW, t0, rule="offline_access_gate")
    opened(engine, late)
    opened(engine, fault)
    acked(engine, fault, t0 + 60)
    values = engine.day(ESTATE, date(2026, 11, 23), now=t0 + 600).values
    assert values["on_time_response_rate"] == pytest.approx(50.0)  # incident 1: 600 s > 180 s, no ack
    resolved(engine, fault, local("2026-11-24T01:00"))  # minor fault: not the same local day
    resolved(engine, late, t0 + 900)
    month = engine.month(ESTATE, 2026, 11, now=local("2026-11-24T02:00")).values
    assert month["repair_timeliness_rate"] == 0.0  # 16 h < 24 h SLA, but low priority: same day needed
    assert month["mttr_s_high"] == 900.0
    assert month["mttr_s_low"] == 16 * 3600.0
    assert month["on_time_response_rate"] == pytest.approx(50.0)  # resolved at 900 s unacked: late


def test_fire_false_alarm_share() -> None:
    day = Day(PANEL)
    engine, t0 = day.engine, local("2026-11-23T09:00")
    for i, cause in enumerate(["false_alarm", "false_alarm", "real", "test"], start=1):
        inc = incident(i, Priority.CRITICAL, t0, rule="fire_point_fire")
        opened(engine, inc)
        resolved(engine, inc, t0 + 300, cause)
    values = engine.day(ESTATE, date(2026, 11, 23), now=t0 + 3600).values
    assert values["fire_false_alarm_share"] == 50.0


def test_month_boundary_in_asia_shanghai() -> None:
    day = Day(GATE, start="2026-11-30T00:00")
    day.read("gate-1", "online", True)
    day.at("2026-11-30T23:00")
    day.read("gate-1", "online", False)
    day.at("2026-12-01T01:00")  # local midnight passes while offline: 1 h in November, 1 h in December
    day.read("gate-1", "online", True)
    day.at("2026-12-01T02:00")
    november = day.engine.month(ESTATE, 2026, 11).values
    december = day.engine.month(ESTATE, 2026, 12).values
    assert november["equipment_intact_rate"] == pytest.approx(100 * 23 / 24, abs=1e-3)
    assert december["equipment_intact_rate"] == pytest.approx(50.0)  # 1 h offline, 1 h online
    # 2026-11-30T23:00+08:00 is 15:00 UTC: the UTC date is still the 30th; the split is local
    assert day.engine.day(ESTATE, date(2026, 12, 1)).values["equipment_intact_rate"] == pytest.approx(50.0)


def test_generator_readiness_and_test_runs() -> None:
    day = Day(GEN)
    day.read("gen-1", "control_mode", "auto")
    day.read("gen-1", "fuel_level", 80)
    day.read("gen-1", "engine_state", "stopped")
    day.at("2026-11-23T10:00")
    day.read("gen-1", "control_mode", "manual")  # not ready: 1 h
    day.read("gen-1", "engine_state", "running")
    day.at("2026-11-23T10:10")
    day.read("gen-1", "engine_state", "stopped")  # 10 min: too short for a test run
    day.at("2026-11-23T11:00")
    day.read("gen-1", "control_mode", "auto")
    day.read("gen-1", "engine_state", "running")
    day.at("2026-11-23T11:20")
    day.read("gen-1", "engine_state", "running")  # 20 min and still running: one test run
    day.at("2026-11-23T11:30")
    day.read("gen-1", "engine_state", "stopped")
    day.read("gen-1", "fuel_level", 10)  # below 20 %: not ready
    day.at("2026-11-23T12:00")
    values = day.engine.day(ESTATE, date(2026, 11, 23)).values
    assert values["generator_test_runs"] == 1
    assert values["generator_readiness"] == pytest.approx(100 * 10.5 / 12, abs=1e-3)  # 1.5 h of 12 h out


def test_vehicles_gates_and_alarm_load() -> None:
    day = Day(GATE, CAM)
    day.at("2026-11-23T02:00")  # outside 06:00-23:00
    day.event("gate-1", "card_granted", card="1")
    day.at("2026-11-23T09:00")
    day.event("gate-1", "card_granted", card="2")
    day.event("gate-1", "door_forced")
    day.event("gate-1", "door_held")
    day.event("cam-1", "plate_resident", plate="粤B1", direction="in", decision="open")
    day.event("cam-1", "plate_visitor", plate="粤B2", direction="out", decision="open")
    day.event("cam-1", "plate_unknown", plate="粤B3", direction="out", decision="hold")
    day.event("cam-1", "plate_blacklisted", plate="粤B4", direction="in", decision="hold")
    for i in range(12):  # a flood: 12 alarms in one 10-minute slot
        day.alarm("gate-1", "gate_door_forced", True, chattering=i == 5)
    day.at("2026-11-23T09:20")
    day.alarm("gate-1", "gate_tamper", True)
    values = day.engine.day(ESTATE, date(2026, 11, 23), now=local("2026-11-23T10:00")).values
    assert values["after_hours_entries"] == 1
    assert values["doors_forced"] == 1 and values["doors_held"] == 1
    assert values["vehicle_entries"] == 1 and values["vehicle_exits"] == 1
    assert values["plates_denied"] == 2 and values["unknown_plate_exits"] == 1
    assert values["alarms"] == 13
    assert values["alarms_per_10min_peak"] == 12
    assert values["chattering_alarms"] == 1
    assert values["flood_time_share"] == pytest.approx(100 * 600 / 36000)  # 1 slot of 10 h elapsed
    detail = day.engine.month_detail(ESTATE, 2026, 11, now=local("2026-11-23T10:00"))
    assert detail.top[0][:2] == ("gate-1/gate_door_forced", 12)


def test_rolling_24h_and_snapshot() -> None:
    day = Day(GATE)
    day.read("gate-1", "online", True)
    day.at("2026-11-23T20:00")
    day.read("gate-1", "online", False)
    day.at("2026-11-24T08:00")  # rolling: 23:00-ish yesterday .. now
    rolling = day.engine.rolling(ESTATE).values
    # current hour 08:00 and the 23 before: from 09:00 yesterday; online 09:00-20:00 (11 h), offline 12 h
    assert rolling["equipment_intact_rate"] == pytest.approx(100 * 11 / 23, abs=1e-3)
    snap = {(v.period, v.name): v.value for v in day.engine.snapshot()}
    assert snap[("rolling_24h", "equipment_intact_rate")] == pytest.approx(100 * 11 / 23, abs=1e-3)
    assert snap[("day", "equipment_intact_rate")] == 0.0  # offline all of today so far
    assert snap[("month", "equipment_intact_rate")] == pytest.approx(100 * 20 / 32, abs=1e-3)


async def test_restart_continues_from_the_store(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    try:
        first = Day(GATE, store=store)
        first.read("gate-1", "online", True)
        first.at("2026-11-23T06:00")
        first.read("gate-1", "online", False)
        first.at("2026-11-23T07:00")
        first.read("gate-1", "online", True)
        t0 = local("2026-11-23T07:30")
        inc = incident(7, Priority.HIGH, t0)
        opened(first.engine, inc)
        first.at("2026-11-23T08:00")
        await first.engine.close()

        second = Day(GATE, start="2026-11-23T08:00", store=store)
        await second.engine.load()
        second.read("gate-1", "online", True)
        acked(second.engine, inc, t0 + 120)
        second.at("2026-11-23T12:00")
        values = second.engine.day(ESTATE, date(2026, 11, 23)).values
        assert values["equipment_intact_rate"] == pytest.approx(100 * 11 / 12, abs=1e-3)
        assert values["mtta_s_high"] == 120.0
        assert values["incidents"] == 1
        await second.engine.save()
        third = Day(GATE, start="2026-11-23T12:00", store=store)
        await third.engine.load()
        assert third.engine.day(ESTATE, date(2026, 11, 23)).values["on_time_response_rate"] == 100.0
    finally:
        await store.close()


async def test_saves_every_interval_until_cancelled(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    try:
        clock = ManualClock(local("2026-11-23T00:00"))
        engine = KpiEngine([KpiEstate(ESTATE, devices=(GATE,))], KpiConfig(save_interval=0.05), clock, store)
        engine.observe([Reading(0, ESTATE, "gate-1", "online", True)], [])
        clock.advance(60)  # a minute of intact gate to save
        task = asyncio.create_task(engine.run())
        for _ in range(100):  # bounded: 2 s
            if engine.saves >= 2:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert engine.saves >= 2
        assert {(e, k) for e, k, _, _ in await store.load_kpi_buckets()} >= {
            (ESTATE, "day"),
            (ESTATE, "hour"),
        }
    finally:
        await store.close()


def test_kpi_block_in_the_site_file() -> None:
    config = GatewayConfig.model_validate({
        "estates": [{"id": ESTATE, "name": {"zh": "阳光花园", "en": "Sunshine"}}],
        "kpi": {"ack_sla_s": {"critical": 30}, "test_run_minutes": 20,
                "targets": {"fire_intact_rate": {"min": 99.5}}},
    })  # fmt: skip
    assert config.kpi.ack_sla_s[Priority.CRITICAL] == 30
    assert config.kpi.targets["fire_intact_rate"].passes(99.6)
    engine = KpiEngine.from_config(config, [GATE], ManualClock(), rules=[])
    assert engine.estates == [ESTATE] and engine.estate(ESTATE) is not None
    with pytest.raises(ValueError, match="min"):
        GatewayConfig.model_validate({"estates": [], "kpi": {"targets": {"x": {}}}})
