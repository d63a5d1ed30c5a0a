"""Alert engine timelines on an injected clock: "at t=1 push X, by t=2.5 expect Y"."""

from __future__ import annotations

from typing import Any

from gateway.alerts import AlertEngine, DeviceInfo, Transition
from gateway.alerts.rules import load_default_rules, merge_rules
from gateway.config.schema import RuleConfig
from gateway.model import DeviceEvent, ManualClock, Quality, Reading

MSG = {"zh": "告警 {value}", "en": "alarm {value}"}


def rule(**fields: Any) -> RuleConfig:
    fields.setdefault("priority", "high")
    fields.setdefault("message", MSG)
    return RuleConfig.model_validate(fields)


def reading(point: str, value: Any, device: str = "d1", quality: Quality = Quality.GOOD) -> Reading:
    return Reading(0, "e1", device, point, value, quality=quality)


class Timeline:
    """Drives an engine: push readings at times, collect transitions."""

    def __init__(self, rules: list[RuleConfig], devices: list[DeviceInfo] | None = None) -> None:
        self.clock = ManualClock()
        self.engine = AlertEngine(rules, devices or [DeviceInfo("e1", "d1", "generator")], self.clock)
        self.out: list[Transition] = []

    def at(self, t: float, *items: Reading | DeviceEvent) -> list[Transition]:
        self.clock.advance(t - self.clock.monotonic())
        new = self.engine.tick()
        for item in items:
            new += self.engine.process(item)
        self.out += new
        return new


def test_threshold_with_on_delay_and_deadband() -> None:
    t = Timeline(
        [
            rule(
                id="low",
                kind="threshold",
                family="generator",
                point="p",
                op="<",
                limit=10,
                deadband=2,
                on_delay=2,
            )
        ]
    )
    assert t.at(0, reading("p", 9)) == []  # condition starts
    assert t.at(1.9) == []  # still within on-delay
    [raised] = t.at(2.0)
    assert raised.active and raised.value == 9
    assert t.at(3, reading("p", 11)) == []  # inside the deadband: holds
    [cleared] = t.at(4, reading("p", 12))
    assert not cleared.active


def test_on_delay_resets_when_condition_goes_away() -> None:
    t = Timeline(
        [rule(id="low", kind="threshold", family="generator", point="p", op="<", limit=10, on_delay=2)]
    )
    t.at(0, reading("p", 9))
    t.at(1, reading("p", 11))
    t.at(1.5, reading("p", 9))
    assert t.at(3.0) == []  # only 1.5 s of continuous condition
    assert [x.active for x in t.at(3.5)] == [True]


def test_off_delay() -> None:
    t = Timeline(
        [rule(id="hi", kind="threshold", family="generator", point="p", op=">", limit=5, off_delay=3)]
    )
    assert [x.active for x in t.at(0, reading("p", 6))] == [True]
    assert t.at(1, reading("p", 1)) == []
    assert t.at(3.9) == []
    assert [x.active for x in t.at(4.0)] == [False]


def test_guard_on_another_point() -> None:
    t = Timeline(
        [
            rule(
                id="oil",
                kind="threshold",
                family="generator",
                point="oil",
                op="<",
                limit=150,
                when={"point": "engine", "in": ["running"]},
            )
        ]
    )
    assert t.at(0, reading("engine", "stopped"), reading("oil", 0)) == []
    assert [x.active for x in t.at(1, reading("engine", "running"))] == [True]
    assert [x.active for x in t.at(2, reading("engine", "stopped"))] == [False]


def test_bad_quality_holds_instead_of_freezing_or_clearing() -> None:
    t = Timeline([rule(id="hi", kind="threshold", family="generator", point="p", op=">", limit=5)])
    t.at(0, reading("p", 6))
    assert t.at(1, reading("p", 0, quality=Quality.BAD)) == []
    assert [x.active for x in t.at(2, reading("p", 1))] == [False]


def test_momentary_event_raises_and_returns_to_normal() -> None:
    t = Timeline(
        [rule(id="forced", kind="event", family="access_gate", events=["door_forced"])],
        [DeviceInfo("e1", "g1", "access_gate")],
    )
    out = t.at(0, DeviceEvent(0, "e1", "g1", "door_forced"), DeviceEvent(0, "e1", "g1", "card_granted"))
    assert [x.active for x in out] == [True, False]


def test_heartbeat_absence_raises_offline_and_recovers() -> None:
    devices = [DeviceInfo("e1", "g1", "access_gate", heartbeat_timeout=10)]
    t = Timeline(merge_rules(load_default_rules(), []), devices)
    assert t.at(5, reading("heartbeat", True, "g1")) == []
    assert t.at(15) == []
    [offline] = t.at(15.1)
    assert offline.rule == "offline_access_gate" and offline.active
    [online] = t.at(20, reading("heartbeat", True, "g1"))
    assert online.rule == "offline_access_gate" and not online.active


def test_glob_rule_makes_one_alarm_per_point() -> None:
    devices = [DeviceInfo("e1", "f1", "fire_panel", points=("L1-D001.fire", "L1-D002.fire", "L1-D001.fault"))]
    t = Timeline([rule(id="fire", kind="state", family="fire_panel", point="*.fire", values=[True])], devices)
    [one] = t.at(0, reading("L1-D002.fire", True, "f1"), reading("L1-D001.fire", False, "f1"))
    assert one.key == "e1/f1/fire/L1-D002.fire"
    assert t.engine.rule_count == 2


def test_restore_active_does_not_reraise() -> None:
    t = Timeline([rule(id="hi", kind="threshold", family="generator", point="p", op=">", limit=5)])
    t.engine.restore_active(["e1/d1/hi"])
    assert t.at(0, reading("p", 9)) == []
    assert [x.active for x in t.at(1, reading("p", 1))] == [False]


def test_cost_per_reading_does_not_scan_unrelated_rules() -> None:
    rules = [
        rule(id=f"r{i}", kind="threshold", family="generator", point=f"p{i}", op=">", limit=1)
        for i in range(1000)
    ]
    t = Timeline(rules)
    assert t.engine.rule_count == 1000
    assert len(t.engine._by_point[("e1", "d1", "p7")]) == 1  # indexed by (estate, device, point)


def test_wall_clock_step_does_not_change_delays() -> None:
    t = Timeline(
        [rule(id="hi", kind="threshold", family="generator", point="p", op=">", limit=5, on_delay=5)]
    )
    t.at(0, reading("p", 9))
    t.clock.step_wall(-3600)  # NTP steps the wall clock back an hour
    assert t.at(4.9) == []
    [raised] = t.at(5.0)
    assert raised.active
