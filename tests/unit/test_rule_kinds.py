"""Count windows, rates, schedules, suppression and chattering, as timelines on an injected clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.alerts import DeviceInfo
from gateway.alerts.rules import load_default_rules
from gateway.model import DeviceEvent, Quality
from tests.unit.test_engine import Timeline, reading, rule

GATE = [DeviceInfo("e1", "g1", "access_gate", timezone="Asia/Shanghai", gate_hours="06:00-23:00")]


def denied(reader: int) -> DeviceEvent:
    return DeviceEvent(0, "e1", "g1", "card_denied", {"reader": reader})


def test_five_denials_in_sixty_seconds_at_one_reader() -> None:
    t = Timeline(
        [
            rule(
                id="burst",
                kind="count",
                family="access_gate",
                events=["card_denied"],
                count=5,
                window=60,
                group_by="reader",
            )
        ],
        GATE,
    )
    for second in range(4):
        assert t.at(second * 10, denied(1)) == []
    assert t.at(45, denied(2)) == []  # another reader does not add up
    [raised] = t.at(50, denied(1))
    assert raised.active and raised.value == "5 × card_denied @ reader 1"
    assert t.at(55, denied(1)) == []  # still active: no second activation
    assert t.at(69) == []  # the first denial (t=0) ages out at 60 s; 5 remain in window (10..55)
    [cleared] = t.at(80)  # now only 20..55 remain for reader 1: 4 < 5
    assert not cleared.active


def test_rate_of_change_needs_half_a_window_of_history() -> None:
    devices = [DeviceInfo("e1", "s1", "septic_pressure")]
    t = Timeline(
        [rule(id="rising", kind="rate", family="septic_pressure", point="p", op=">", limit=1.0, window=120)],
        devices,
    )
    assert t.at(0, reading("p", 10.0, "s1")) == []
    assert t.at(30, reading("p", 11.0, "s1")) == []  # 2 kPa/min, but only 30 s of history
    [raised] = t.at(60, reading("p", 12.0, "s1"))  # 2 kPa/min over 60 s
    assert raised.active
    assert t.at(120, reading("p", 12.1, "s1")) == []  # window 0..120: 1.05 kPa/min, still rising fast
    [cleared] = t.at(180, reading("p", 12.2, "s1"))  # window 60..180: 0.1 kPa/min
    assert not cleared.active


def _wall(hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, 23, hour, minute, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def test_after_hours_entry_uses_the_estates_timezone() -> None:
    t = Timeline(
        [
            rule(
                id="after_hours",
                kind="event",
                family="access_gate",
                events=["card_granted"],
                schedule="outside_gate_hours",
                priority="low",
            )
        ],
        GATE,
    )
    granted = DeviceEvent(0, "e1", "g1", "card_granted", {"card": "8165538"})
    t.clock.step_wall(_wall(10, 0) - t.clock.now())  # 10:00 in Shanghai (02:00 UTC): open hours
    assert t.at(1, granted) == []
    t.clock.step_wall(_wall(23, 30) - t.clock.now())  # 23:30 in Shanghai: after hours
    raised, cleared = t.at(2, granted)
    assert raised.active and raised.value == "8165538" and not cleared.active
    t.clock.step_wall(_wall(5, 59) - t.clock.now())  # 05:59: still closed
    assert len(t.at(3, granted)) == 2


def test_suppressed_by_design_while_in_a_planned_test_run() -> None:
    t = Timeline(
        [
            rule(
                id="fuel",
                kind="threshold",
                family="generator",
                point="fuel",
                op="<",
                limit=20,
                suppress_when={"point": "mode", "in": ["test_on_load"]},
            )
        ]
    )
    t.at(0, reading("mode", "auto"))
    [raised] = t.at(1, reading("fuel", 15))
    assert raised.active
    [suppressed] = t.at(2, reading("mode", "test_on_load"))
    assert not suppressed.active and suppressed.reason == "suppressed"
    assert t.at(3, reading("fuel", 10)) == []  # no alarm while suppressed
    [again] = t.at(4, reading("mode", "auto"))
    assert again.active and again.reason == ""


def test_chattering_is_flagged_once() -> None:
    t = Timeline(
        [
            rule(
                id="hi",
                kind="threshold",
                family="generator",
                point="p",
                op=">",
                limit=5,
                chatter_count=3,
                chatter_window=60,
            )
        ]
    )
    flags = []
    for second in range(0, 12, 2):
        for tr in t.at(second, reading("p", 9 if second % 4 == 0 else 1)):
            if tr.active:
                flags.append(tr.chattering)
    assert flags == [False, False, True]  # activations at 0, 4, 8 s: the third one flags it
    assert t.at(200, reading("p", 9))[0].chattering is False  # quiet for the window: no longer chattering


def _defaults(*ids: str) -> list[Any]:
    return [r for r in load_default_rules() if r.id in ids]


def test_unknown_vehicle_trying_to_exit_but_not_entering() -> None:
    barrier = [DeviceInfo("e1", "b1", "plate_barrier")]
    t = Timeline(_defaults("plate_unknown_exit"), barrier)
    entering = DeviceEvent(0, "e1", "b1", "plate_unknown", {"plate": "粤B99999", "direction": "in"})
    leaving = DeviceEvent(0, "e1", "b1", "plate_unknown", {"plate": "粤B99999", "direction": "out"})
    assert t.at(0, entering) == []
    raised, _ = t.at(1, leaving)
    assert raised.active and raised.value == "粤B99999"


def test_barrier_open_for_two_minutes() -> None:
    barrier = [DeviceInfo("e1", "b1", "plate_barrier", points=("barrier_open",))]
    t = Timeline(_defaults("barrier_open_too_long"), barrier)
    assert t.at(0, reading("barrier_open", True, "b1")) == []
    assert t.at(119) == []
    assert [x.active for x in t.at(120)] == [True]
    assert [x.active for x in t.at(121, reading("barrier_open", False, "b1"))] == [False]


def test_sensor_fault_from_bad_quality_readings() -> None:
    tank = [DeviceInfo("e1", "s1", "septic_pressure", points=("pressure",))]
    t = Timeline(_defaults("septic_sensor_fault"), tank)
    assert t.at(0, reading("pressure", 9.0, "s1")) == []
    assert t.at(1, reading("pressure", 0, "s1", quality=Quality.BAD)) == []  # on-delay 10 s
    assert t.at(5, reading("pressure", 0, "s1", quality=Quality.BAD)) == []
    [fault] = t.at(11)
    assert fault.active and fault.rule == "septic_sensor_fault"
    [cleared] = t.at(12, reading("pressure", 9.1, "s1"))
    assert not cleared.active


def test_holidays_have_their_own_gate_hours_or_none() -> None:
    def gate(hours: str | None) -> list[DeviceInfo]:
        return [DeviceInfo("e1", "g1", "access_gate", gate_hours="06:00-23:00",
                           holidays=("2026-10-01",), holiday_gate_hours=hours)]  # fmt: skip

    after_hours = rule(id="after_hours", kind="event", family="access_gate", events=["card_granted"],
                       schedule="outside_gate_hours", priority="low")  # fmt: skip
    granted = DeviceEvent(0, "e1", "g1", "card_granted", {"card": "1"})
    holiday_10am = datetime(2026, 10, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    workday_10am = datetime(2026, 10, 8, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    closed = Timeline([after_hours], gate(None))  # National Day, gates closed all day
    closed.clock.step_wall(holiday_10am - closed.clock.now())
    assert len(closed.at(1, granted)) == 2
    short = Timeline([after_hours], gate("08:00-12:00"))  # holiday hours 08:00-12:00
    short.clock.step_wall(holiday_10am - short.clock.now())
    assert short.at(1, granted) == []
    short.clock.step_wall(holiday_10am + 3 * 3600 - short.clock.now())  # 13:00 on the holiday
    assert len(short.at(2, granted)) == 2
    short.clock.step_wall(workday_10am - short.clock.now())  # an ordinary day: 06:00-23:00 again
    assert short.at(3, granted) == []
