"""Composite rules across devices: confirmed fire in a zone, fire lane blocked by a closed barrier."""

from __future__ import annotations

from gateway.alerts import DeviceInfo
from gateway.alerts.rules import load_default_rules
from tests.unit.test_engine import Timeline, reading, rule

FIRE = ("L1-D001.fire", "L1-D002.fire", "L1-D003.fire")
DEVICES = [
    DeviceInfo("e1", "panel-3", "fire_panel", points=FIRE, zone="B3"),
    DeviceInfo("e1", "panel-5", "fire_panel", points=FIRE, zone="B5"),
    DeviceInfo("e1", "barrier-east", "plate_barrier", points=("barrier_down",), zone="east"),
]


def confirmed() -> Timeline:
    [fire] = [r for r in load_default_rules() if r.id == "fire_confirmed"]
    return Timeline([fire], DEVICES)


def test_two_points_in_one_zone_within_two_minutes_confirm_a_fire() -> None:
    t = confirmed()
    assert t.at(0, reading("L1-D001.fire", True, "panel-3")) == []
    [raised] = t.at(90, reading("L1-D003.fire", True, "panel-3"))
    assert raised.active and raised.key == "e1/B3/fire_confirmed" and raised.latch
    assert "panel-3 L1-D001.fire" in str(raised.value) and "panel-3 L1-D003.fire" in str(raised.value)
    assert "B3" in raised.message_en


def test_points_in_different_zones_do_not_confirm() -> None:
    t = confirmed()
    t.at(0, reading("L1-D001.fire", True, "panel-3"))
    assert t.at(10, reading("L1-D001.fire", True, "panel-5")) == []


def test_points_three_minutes_apart_do_not_confirm() -> None:
    t = confirmed()
    t.at(0, reading("L1-D001.fire", True, "panel-3"))
    assert t.at(180, reading("L1-D002.fire", True, "panel-3")) == []
    [raised] = t.at(200, reading("L1-D003.fire", True, "panel-3"))  # D002 and D003: 20 s apart
    assert raised.active


def test_fire_lane_blocked_when_barrier_stays_down() -> None:
    lane = rule(
        id="fire_lane_blocked", kind="composite", priority="critical", on_delay=30,
        terms=[{"family": "fire_panel", "point": "*.fire", "values": [True]},
               {"device": "barrier-east", "point": "barrier_down", "values": [True]}],
    )  # fmt: skip
    t = Timeline([lane], DEVICES)
    t.at(0, reading("barrier_down", True, "barrier-east"))
    assert t.at(5, reading("L1-D002.fire", True, "panel-5")) == []  # fire; barrier down: on-delay starts
    assert t.at(34.9) == []
    [raised] = t.at(35)
    assert raised.active and raised.key == "e1/*/fire_lane_blocked"
    [cleared] = t.at(40, reading("barrier_down", False, "barrier-east"))  # the barrier lifts
    assert not cleared.active


def test_composite_needs_every_term_to_be_possible() -> None:
    lane = rule(
        id="lane", kind="composite", priority="critical",
        terms=[{"family": "fire_panel", "point": "*.fire", "values": [True]},
               {"device": "no-such-barrier", "point": "barrier_down", "values": [True]}],
    )  # fmt: skip
    assert Timeline([lane], DEVICES).engine.rule_count == 0


def test_gst_state_points_raise_fire_fault_and_disabled() -> None:
    rules = [r for r in load_default_rules() if r.id.startswith("fire_point_state_")]
    gst = [DeviceInfo("e1", "gst-1", "fire_panel", points=("L1-D001.state", "L1-D002.state"), zone="B3")]
    t = Timeline(rules, gst)
    [fire] = t.at(0, reading("L1-D001.state", "fire", "gst-1"))
    assert fire.active and fire.rule == "fire_point_state_fire" and fire.latch
    [fault] = t.at(1, reading("L1-D002.state", "fault", "gst-1"))
    assert fault.rule == "fire_point_state_fault"
    cleared, disabled = t.at(2, reading("L1-D002.state", "disabled", "gst-1"))
    assert not cleared.active and disabled.rule == "fire_point_state_disabled" and disabled.active
