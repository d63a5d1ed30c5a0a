"""Guard tours and maintenance in the KPI engine and the monthly assessment: 巡更完成率 and punctuality
counted in the day a tour was due; an overdue duty's alarm impairs its generator in 设备完好率 and
应急发电可用率 and nothing else (an estate-wide duty counts against no device); the report's rows."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from gateway.alerts import DeviceInfo, Transition
from gateway.config.kpi import KpiConfig
from gateway.kpi import KpiEngine, KpiEstate
from gateway.kpi.report import build_report, to_csv, to_html
from gateway.model import ManualClock, Priority, Reading

TZ = ZoneInfo("Asia/Shanghai")
GEN = DeviceInfo("sunshine", "gen-1", "generator")


def local(*args: int) -> float:
    return datetime(*args, tzinfo=TZ).timestamp()  # type: ignore[misc]


def overdue(device: str, active: bool, at: float) -> Transition:
    return Transition(f"sunshine/{device}/maintenance_overdue/d", "sunshine", device, "maintenance_overdue",
                      Priority.MEDIUM, active, at, "d", "维保逾期", "Maintenance overdue")  # fmt: skip


def test_patrol_rates_per_day_and_in_the_monthly_report() -> None:
    clock = ManualClock(local(2026, 11, 25, 12))
    engine = KpiEngine(
        [KpiEstate("sunshine", "阳光花园", "Sunshine Garden", devices=(GEN,))], KpiConfig(), clock
    )
    for hour, completed, on_time in ((22, True, True), (23, True, False)):
        engine.patrol_tour("sunshine", local(2026, 11, 24, hour), completed, on_time)
    for hour in (0, 1):
        engine.patrol_tour("sunshine", local(2026, 11, 25, hour), False, False)
    engine.patrol_tour("elsewhere", local(2026, 11, 25, 1), True, True)  # not ours: ignored
    day1 = engine.day("sunshine", date(2026, 11, 24)).values
    assert (day1["patrol_tours"], day1["patrol_completion_rate"], day1["patrol_on_time_rate"]) == (2, 100, 50)
    day2 = engine.day("sunshine", date(2026, 11, 25)).values
    assert (day2["patrol_tours"], day2["patrol_completion_rate"]) == (
        2,
        0,
    ) and "patrol_on_time_rate" not in day2
    month = engine.month("sunshine", 2026, 11).values
    assert (month["patrol_tours"], month["patrol_completion_rate"], month["patrol_on_time_rate"]) == (
        4,
        50,
        50,
    )
    spec = engine.estate("sunshine")
    assert spec is not None
    for lang, name in (("zh-CN", "巡更完成率"), ("en", "Patrol completion rate")):
        report = build_report(
            engine.month_detail("sunshine", 2026, 11), spec, engine.config, lang, clock.now()
        )
        row = next(r for r in report["rows"] if r["kpi"] == "patrol_completion_rate")
        assert (row["label"], row["value"], row["pass"]) == (name, 50.0, False)  # target ≥ 95 %
        assert name in to_csv(report) and name in to_html(report, engine.config)


def test_an_overdue_duty_impairs_its_generator_and_an_estate_wide_one_nothing() -> None:
    start = local(2026, 11, 24, 0)
    clock = ManualClock(start)
    engine = KpiEngine([KpiEstate("sunshine", devices=(GEN,))], KpiConfig(), clock)
    ready = Reading(int(start * 1e9), "sunshine", "gen-1", "control_mode", "auto")
    engine.observe([ready], [overdue("maintenance", True, start)])  # the estate's duty: no device
    clock.advance(6 * 3600)
    engine.observe([], [overdue("gen-1", True, clock.now())])  # the generator's test run is overdue
    clock.advance(6 * 3600)
    engine.observe([], [overdue("gen-1", False, clock.now())])  # recorded: cleared
    clock.advance(12 * 3600 - 1)
    values = engine.day("sunshine", date(2026, 11, 24)).values
    assert round(values["equipment_intact_rate"]) == 75  # 6 of 24 hours overdue
    assert round(values["generator_readiness"]) == 75
