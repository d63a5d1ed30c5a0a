"""The guard-tour state machine and schedules, with time as plain numbers (no I/O): on time, late,
missed, out of order, a tour never started, a second swipe; schedule lines in the estate's timezone;
the config's checks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.config.patrol import RouteConfig, parse_schedule
from gateway.config.schema import EstateConfig
from gateway.patrol import CheckpointPlan, Tour, due_times

MIN = 60.0
T0 = 1_800_000_000.0


def tour() -> Tour:
    """Three checkpoints at +0, +10, +20 min; 5 min tolerance; the tour ends at +40 min."""
    plan = [CheckpointPlan("a", 0), CheckpointPlan("b", 10 * MIN), CheckpointPlan("c", 20 * MIN)]
    return Tour("sunshine", "night", T0, T0 + 40 * MIN, 5 * MIN, plan)


def names(signals: list) -> list[tuple[str, int, bool]]:  # type: ignore[type-arg]
    return [(s.rule, s.index, s.active) for s in signals]


def test_on_time_tour_completes_without_alarms() -> None:
    t = tour()
    assert t.punch(0, T0 - 2 * MIN) == []  # within the tolerance before the start
    assert t.status == "in_progress"
    assert t.punch(1, T0 + 12 * MIN) == []
    assert t.punch(2, T0 + 24 * MIN) == []
    assert (t.status, t.completed, t.on_time, t.finished_at) == ("completed", True, True, T0 + 24 * MIN)
    assert t.states == ["on_time"] * 3
    assert t.advance(T0 + 60 * MIN) == []  # over: nothing more


def test_late_checkpoint_raises_at_its_deadline_and_clears_on_the_punch() -> None:
    t = tour()
    t.punch(0, T0)
    assert t.advance(T0 + 14 * MIN) == []  # b's deadline is +15 min
    assert names(t.advance(T0 + 15 * MIN + 1)) == [("patrol_late", 1, True)]
    assert t.advance(T0 + 16 * MIN) == []  # raised once
    assert names(t.punch(1, T0 + 18 * MIN)) == [("patrol_late", 1, False)]
    t.punch(2, T0 + 22 * MIN)
    assert (t.status, t.completed, t.on_time) == ("late", True, False)
    assert t.states == ["on_time", "late", "on_time"]


def test_missed_checkpoint_at_the_end_of_the_tour() -> None:
    t = tour()
    t.punch(0, T0)
    t.punch(1, T0 + 10 * MIN)
    assert names(t.advance(T0 + 26 * MIN)) == [("patrol_late", 2, True)]
    signals = t.advance(T0 + 40 * MIN)
    assert names(signals) == [
        ("patrol_missed", 2, True),
        ("patrol_missed", 2, False),
        ("patrol_late", 2, False),
    ]
    assert all(s.ts == T0 + 40 * MIN for s in signals)
    assert (t.status, t.completed, t.states[2]) == ("missed", False, "missed")
    assert t.advance(T0 + 50 * MIN) == [] and not t.open


def test_tour_never_started_is_one_late_and_one_missed_alarm() -> None:
    t = tour()
    assert names(t.advance(T0 + 30 * MIN)) == [("patrol_late", 0, True)]  # not one per checkpoint
    signals = t.advance(T0 + 41 * MIN)
    assert names(signals) == [
        ("patrol_missed", 0, True),
        ("patrol_missed", 0, False),
        ("patrol_late", 0, False),
    ]
    assert signals[0].whole and t.status == "missed" and t.states == ["missed"] * 3


def test_out_of_order_punch_skips_the_expected_checkpoint() -> None:
    t = tour()
    t.punch(0, T0)
    signals = t.punch(2, T0 + 8 * MIN)  # c before b: the last one, so the tour ends and clears it
    assert names(signals) == [("patrol_out_of_order", 2, True), ("patrol_out_of_order", 2, False)]
    assert signals[0].other == 1
    assert t.states == ["on_time", "skipped", "on_time"]
    assert t.status == "out_of_order" and not t.completed and t.raised == {}


def test_out_of_order_alarm_stays_until_the_tour_ends() -> None:
    plan = [CheckpointPlan(c, i * 5 * MIN) for i, c in enumerate("abcd")]
    t = Tour("sunshine", "night", T0, T0 + 40 * MIN, 5 * MIN, plan)
    t.punch(0, T0)
    assert names(t.punch(2, T0 + 10 * MIN)) == [("patrol_out_of_order", 2, True)]
    assert t.punch(1, T0 + 11 * MIN) == []  # the skipped one, afterwards: already passed
    assert names(t.punch(3, T0 + 15 * MIN)) == [("patrol_out_of_order", 2, False)]
    assert t.status == "out_of_order"


def test_second_swipe_and_punch_outside_the_window() -> None:
    t = tour()
    assert not t.takes(T0 - 6 * MIN) and t.takes(T0 - 5 * MIN) and t.takes(T0 + 40 * MIN)
    t.punch(0, T0)
    assert t.punch(0, T0 + MIN) == [] and t.next == 1  # a second swipe changes nothing


def test_round_trip_through_json_keeps_raised_alarms() -> None:
    t = tour()
    t.punch(0, T0)
    t.advance(T0 + 16 * MIN)
    again = Tour.from_dict(t.to_dict())
    assert again.to_dict() == t.to_dict()
    assert names(again.punch(1, T0 + 17 * MIN)) == [("patrol_late", 1, False)]


def _route(**kw: object) -> RouteConfig:
    return RouteConfig.model_validate(_route_data(**kw))


def _route_data(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "night", "name": {"zh": "夜间巡逻", "en": "Night round"},
        "schedule": ["every 2h from 22:00 to 06:00"], "tolerance_minutes": 5, "max_duration_minutes": 40,
        "checkpoints": [{"id": "a", "name": {"zh": "北门", "en": "North"}, "device": "gate-north"},
                        {"id": "b", "name": {"zh": "3号楼", "en": "B3"}, "device": "tags",
                         "event": "patrol_tag", "after_minutes": 20}],
    }  # fmt: skip
    base.update(kw)
    return base


def test_schedules_in_the_estate_timezone() -> None:
    assert parse_schedule("every 2h from 22:00 to 06:00").minutes == (0, 120, 240, 1320)
    assert parse_schedule("every 1h").minutes == tuple(range(0, 1440, 60))
    assert parse_schedule("at 09:00, 15:30").minutes == (540, 930)
    tz = ZoneInfo("Asia/Shanghai")
    start = datetime(2026, 11, 24, 21, 0, tzinfo=tz).timestamp()
    got = [
        datetime.fromtimestamp(t, tz).strftime("%d %H:%M")
        for t in due_times(_route(), "Asia/Shanghai", start, start + 12 * 3600)
    ]
    assert got == ["24 22:00", "25 00:00", "25 02:00", "25 04:00"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": ["every 2 weeks"]}, "a schedule looks like"),
        ({"schedule": ["every 30min"]}, "tours would overlap"),
        ({"max_duration_minutes": 20}, "window ends after max_duration_minutes"),
        ({"schedule": ["at 25:00"]}, "not a time of day"),
    ],
)
def test_route_config_is_checked(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _route(**change)


def test_estate_checks_checkpoint_and_duty_devices() -> None:
    estate: dict[str, object] = {
        "id": "sunshine", "name": {"zh": "阳光花园", "en": "Sunshine Garden"},
        "devices": [{"id": "gate-north", "family": "access_gate", "profile": "generic_access_gate",
                     "mqtt": {"topic": "estate/sunshine/access_gate/gate-north/+"}}],
        "patrol": {"routes": [_route_data(schedule=["at 22:00"])]},
    }  # fmt: skip
    with pytest.raises(ValidationError, match="checkpoint device 'tags' is not in this estate"):
        EstateConfig.model_validate(estate)
    estate["patrol"] = None
    duty = {"id": "t", "kind": "generator_test_run", "device": "gate-north", "every_months": 1,
            "name": {"zh": "试机", "en": "Test run"}}  # fmt: skip
    estate["maintenance"] = {"duties": [duty]}
    with pytest.raises(ValidationError, match="'gate-north' is not a generator"):
        EstateConfig.model_validate(estate)
