"""Maintenance duties with a manual clock on a real SQLite store: due dates (days, calendar months,
run-hours, a configured last date), ONE overdue alarm across many evaluations and across a restart,
cleared by the recorded completion, which moves the due date on; the due-soon reminder to the engineer
on call through the console channel, once per due date; the config's checks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.alerts import Transition
from gateway.config.maintenance import DutyConfig, MaintenanceConfig
from gateway.escalation.channel_config import ConsoleChannelConfig
from gateway.escalation.channels.console import ConsoleChannel, NoticeFeed
from gateway.escalation.types import Person
from gateway.incidents import Grouping, IncidentService
from gateway.maintenance import DutyState, MaintenanceEstate, MaintenanceTracker, Reminder, judge
from gateway.model import IncidentState, ManualClock, Reading
from gateway.store import SqliteStore

TZ = "Asia/Shanghai"
DAY = 86400.0


def local(*args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo(TZ)).timestamp()  # type: ignore[misc]


def duty(**kw: Any) -> DutyConfig:
    base: dict[str, Any] = {"id": "ext", "kind": "extinguisher_check", "every_days": 30,
                            "name": {"zh": "灭火器检查", "en": "Extinguisher check"}}  # fmt: skip
    base.update(kw)
    return DutyConfig.model_validate(base)


def test_due_dates_by_days_months_and_a_configured_last_date() -> None:
    since = local(2026, 1, 31, 10)
    state = DutyState(since=since)
    assert judge(duty(), state, since, TZ).due_at == since + 30 * DAY
    monthly = duty(every_days=None, every_months=1, remind_before_days=3)
    verdict = judge(monthly, state, since, TZ)
    assert verdict.due_at == local(2026, 2, 28, 10) and verdict.status == "ok"  # 31 Jan + 1 month
    assert judge(monthly, state, local(2026, 2, 25, 11), TZ).status == "due_soon"
    assert judge(monthly, state, local(2026, 2, 28, 10), TZ).status == "overdue"
    seeded = duty(every_days=None, every_months=12, last_done="2025-03-15")
    assert judge(seeded, state, since, TZ).due_at == local(2026, 3, 15)
    state.last_done = local(2026, 3, 1)
    assert judge(seeded, state, since, TZ).due_at == local(2027, 3, 1)  # the record wins


def test_run_hour_service_is_unknown_until_the_first_reading() -> None:
    service = duty(kind="generator_service", device="gen-1", every_days=None, every_run_hours=250,
                   remind_before_hours=25)  # fmt: skip
    state = DutyState(since=0.0)
    assert judge(service, state, 0.0, TZ).status == "unknown"
    state.run_hours_at_last, state.run_hours = 100.0, 330.0
    assert (judge(service, state, 0.0, TZ).status, judge(service, state, 0.0, TZ).due_run_hours) == (
        "due_soon",
        350,
    )
    state.run_hours = 350.0
    assert judge(service, state, 0.0, TZ).status == "overdue"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"every_months": 1}, "exactly one of every_days, every_months"),
        ({"kind": "generator_service", "device": "gen-1"}, "needs every_run_hours"),
        ({"kind": "generator_test_run"}, "names its generator"),
    ],
)
def test_duty_config_is_checked(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        duty(**change)


class World:
    def __init__(self, tmp: Path, clock: ManualClock, duties: list[DutyConfig], reminder: Reminder | None):
        self.store = SqliteStore(tmp / "m.db")
        self.clock = clock
        self.service = IncidentService(self.store, clock, grouping=Grouping(correlation_window=0))
        self.applied: list[Transition] = []
        self.estate = MaintenanceEstate("sunshine", "阳光花园", "Sunshine Garden", TZ,
                                        MaintenanceConfig(duties=duties))  # fmt: skip
        self.tracker = MaintenanceTracker([self.estate], self.store, clock, self.apply, reminder)

    async def apply(self, transitions: list[Transition]) -> None:
        self.applied.extend(transitions)
        await self.service.apply(transitions)

    async def __aenter__(self) -> World:
        await self.store.open()
        await self.service.start()
        await self.tracker.load()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()


async def test_overdue_raises_one_alarm_until_the_completion_clears_it(tmp_path: Path) -> None:
    clock = ManualClock(local(2026, 11, 1, 9))
    duties = [duty(every_days=10, device=None)]
    async with World(tmp_path, clock, duties, None) as w:
        await w.tracker.evaluate()
        assert w.applied == []
        clock.advance(10 * DAY)
        for _ in range(50):  # many evaluations, one alarm
            await w.tracker.evaluate()
            clock.advance(600)
        assert [(t.rule, t.active, t.device) for t in w.applied] == [
            ("maintenance_overdue", True, "maintenance")
        ]
        assert "灭火器检查" in w.applied[0].message_zh and "2026-11-11" in w.applied[0].message_en
        [incident] = w.service.manager.by_id.values()
        assert incident.state is IncidentState.OPEN and incident.active
    # a restart: the alarm is remembered (the store's state row), not raised again
    async with World(tmp_path, clock, duties, None) as w:
        for _ in range(5):
            await w.tracker.evaluate()
        assert w.applied == []
        record = await w.tracker.complete("sunshine", "ext", "liu.yang", "24 具合格")
        assert (record.by, record.how, record.note, record.id) == ("liu.yang", "recorded", "24 具合格", 1)
        assert [(t.rule, t.active) for t in w.applied] == [("maintenance_overdue", False)]
        [view] = w.tracker.view("sunshine")
        assert view.status == "ok" and view.due_at == clock.now() + 10 * DAY and not view.alarmed
        listed = await w.store.list_maintenance_records("sunshine")
        assert [(r.duty, r.by) for r in listed] == [("ext", "liu.yang")]


async def test_due_soon_reminds_the_engineer_on_call_once_per_due_date(tmp_path: Path) -> None:
    clock = ManualClock(local(2026, 11, 1, 9))
    feed = NoticeFeed()
    notices = feed.subscribe()
    console = ConsoleChannel(ConsoleChannelConfig(type="console", name="console"), feed)
    on_call = {"engineer_on_call": [Person("liu.yang", "刘洋")]}
    reminder = Reminder({"console": console}, lambda e, role, at: on_call.get(role, []), clock)
    async with World(tmp_path, clock, [duty(every_days=10, remind_before_days=2)], reminder) as w:
        await w.tracker.evaluate()
        clock.advance(7 * DAY)
        await w.tracker.evaluate()
        assert notices.queue.empty()
        clock.advance(1.5 * DAY)  # 1.5 days before due
        for _ in range(5):
            await w.tracker.evaluate()
        assert notices.queue.qsize() == 1 and reminder.sent == [("sunshine", "ext", "liu.yang")]
        notice = notices.queue.get_nowait()
        assert notice.person_id == "liu.yang" and "维保即将到期" in notice.notification.title_zh
        assert w.applied == []  # a reminder is no alarm
        await w.tracker.complete("sunshine", "ext", "liu.yang")
        clock.advance(8.5 * DAY)  # the next due date's margin: reminded again
        await w.tracker.evaluate()
        assert notices.queue.qsize() == 1


async def test_run_hours_from_readings_make_a_service_due(tmp_path: Path) -> None:
    clock = ManualClock(local(2026, 11, 1, 9))
    service = duty(id="svc", kind="generator_service", device="gen-1", every_days=None, every_run_hours=10,
                   remind_before_hours=1)  # fmt: skip
    async with World(tmp_path, clock, [service], None) as w:

        def run_time(hours: float) -> Reading:
            return Reading(int(clock.now() * 1e9), "sunshine", "gen-1", "run_time", hours * 3600, "s")

        w.tracker.observe([run_time(120.0)], [])
        await w.tracker.evaluate()
        w.tracker.observe([run_time(130.5)], [])
        await w.tracker.evaluate()
        assert [(t.rule, t.active, t.device) for t in w.applied] == [("maintenance_overdue", True, "gen-1")]
        await w.tracker.complete("sunshine", "svc", "liu.yang", "换机油")
        [view] = w.tracker.view("sunshine")
        assert (view.status, view.due_run_hours) == ("ok", 140.5)
