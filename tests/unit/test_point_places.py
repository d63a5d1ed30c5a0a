"""Point labels and zones in the alert core: an alarm on a labelled point shows the label as its
{location}, and its incident correlates in the point's zone, so one panel serving two buildings gives
one incident per building."""

from __future__ import annotations

from drivers.profiles import ProfileLibrary
from gateway.alerts import DeviceInfo, PointPlace, Transition
from gateway.alerts.rules import load_default_rules
from gateway.config import DeviceConfig
from gateway.incidents.manager import IncidentChange, IncidentManager
from gateway.model import Priority
from gateway.runtime.build import BoundDevice
from tests.unit.test_engine import Timeline, reading

B3, B5 = "3号楼", "5号楼"
PLACES = {
    **{f"L1-D003.{s}": PointPlace("3号楼 2层 烟感 走廊东", B3) for s in ("fire", "pre_alarm", "fault")},
    **{f"L1-D005.{s}": PointPlace("3号楼 3层 烟感 走廊", B3) for s in ("fire", "pre_alarm", "fault")},
    **{f"L2-D002.{s}": PointPlace("5号楼 2层 烟感 走廊", B5) for s in ("fire", "pre_alarm", "fault")},
    "L1-D009.fire": PointPlace("3号楼 9层 烟感"),  # a label without a zone: the panel's zone
}
POINTS = (*PLACES, "L1-D001.fire", "L1-D001.fault", "online")
PANEL = DeviceInfo(
    "e1", "fire-1", "fire_panel", location="消防控制室", points=POINTS, zone="panel-zone", places=PLACES
)
RULES = load_default_rules()


def fire_panel_timeline(*devices: DeviceInfo) -> Timeline:
    return Timeline([r for r in RULES if r.family is None or r.family.value == "fire_panel"], list(devices))


def apply(manager: IncidentManager, transitions: list[Transition]) -> list[IncidentChange]:
    return [change for t in transitions if (change := manager.apply(t)) is not None]


def test_a_labelled_point_shows_its_label_and_an_unlabelled_one_the_device_location() -> None:
    t = fire_panel_timeline(PANEL)
    [fire] = t.at(0, reading("L1-D003.fire", True, "fire-1"))
    assert fire.message_zh == "火警：fire-1 L1-D003.fire（3号楼 2层 烟感 走廊东）"
    assert fire.message_en == "FIRE: fire-1 L1-D003.fire (3号楼 2层 烟感 走廊东)"
    assert fire.zone == B3
    [fault] = t.at(1, reading("L1-D001.fault", True, "fire-1"))
    assert fault.message_zh == "消防设施故障：fire-1 L1-D001.fault（消防控制室）"
    assert fault.zone == "panel-zone"
    [labelled_only] = t.at(2, reading("L1-D009.fire", True, "fire-1"))
    assert "3号楼 9层 烟感" in labelled_only.message_zh and labelled_only.zone == "panel-zone"


def test_device_alarms_stay_where_the_device_is() -> None:
    t = fire_panel_timeline(PANEL)
    t.at(0, reading("online", True, "fire-1"))
    [silent] = t.at(1, reading("online", False, "fire-1"))
    assert silent.rule == "offline_fire_panel" and silent.priority is Priority.HIGH
    assert silent.zone == "panel-zone" and "fire-1" in silent.message_zh


def test_pre_alarms_in_one_building_correlate_and_the_other_building_opens_its_own() -> None:
    t = fire_panel_timeline(PANEL)
    manager = IncidentManager()
    [first] = apply(manager, t.at(0, reading("L1-D003.pre_alarm", True, "fire-1")))
    [joined] = apply(manager, t.at(5, reading("L1-D005.pre_alarm", True, "fire-1")))
    [other] = apply(manager, t.at(8, reading("L2-D002.pre_alarm", True, "fire-1")))
    assert first.new and not joined.new and other.new
    assert joined.incident is first.incident and joined.entries[-1].action == "alarm_correlated"
    assert first.incident.zone == B3 and len(first.incident.members) == 2
    assert other.incident is not first.incident and other.incident.zone == B5
    assert first.incident.title == "火灾预警：fire-1 L1-D003.pre_alarm（3号楼 2层 烟感 走廊东）"
    assert other.incident.title == "火灾预警：fire-1 L2-D002.pre_alarm（5号楼 2层 烟感 走廊）"


def test_faults_of_two_panels_in_the_same_building_correlate_by_point_zone() -> None:
    gst = DeviceInfo(
        "e1", "fire-2", "fire_panel", points=("L1-D010.state",), zone=B5,  # the panel's room is in 5号楼
        places={"L1-D010.state": PointPlace("3号楼 地下室 温感 配电房", B3)},
    )  # fmt: skip
    t = fire_panel_timeline(PANEL, gst)
    manager = IncidentManager()
    [first] = apply(manager, t.at(0, reading("L1-D003.fault", True, "fire-1")))
    [joined] = apply(manager, t.at(3, reading("L1-D010.state", "fault", "fire-2")))
    assert joined.incident is first.incident
    assert "3号楼 地下室 温感 配电房" in joined.entries[-1].detail["message_zh"]  # type: ignore[operator]


def test_first_out_incident_shows_the_first_points_label() -> None:
    t = fire_panel_timeline(PANEL)
    manager = IncidentManager()
    opened = apply(manager, t.at(0, reading("L1-D005.fire", True, "fire-1")))
    opened += apply(manager, t.at(20, reading("L1-D003.fire", True, "fire-1")))
    first, second, confirmed = (change.incident for change in opened)
    assert first.first_out and not second.first_out
    assert first.title == "火警：fire-1 L1-D005.fire（3号楼 3层 烟感 走廊）"
    assert [e.action for e in first.timeline] == ["opened", "first_out"]
    assert second.timeline[-1].detail["first_out_alarm"] == first.alarm_key
    assert confirmed.rule == "fire_confirmed" and confirmed.zone == B3


def test_confirmed_fire_needs_two_points_in_the_same_building_even_on_one_panel() -> None:
    t = fire_panel_timeline(PANEL)
    t.at(0, reading("L1-D003.fire", True, "fire-1"))
    assert [x.rule for x in t.at(10, reading("L2-D002.fire", True, "fire-1"))] == ["fire_point_fire"]
    raised = t.at(20, reading("L1-D005.fire", True, "fire-1"))
    [confirmed] = [x for x in raised if x.rule == "fire_confirmed"]
    assert confirmed.key == f"e1/{B3}/fire_confirmed" and confirmed.zone == B3
    assert confirmed.message_zh.startswith(f"确认火警：{B3} 区域多点报警")
    assert "fire-1 L1-D003.fire（3号楼 2层 烟感 走廊东）" in str(confirmed.value)
    assert "L2-D002" not in str(confirmed.value)


def test_gst_state_points_confirm_a_fire_per_building() -> None:
    places = {
        "L1-D001.state": PointPlace("3号楼 1层 烟感", B3),
        "L1-D002.state": PointPlace("3号楼 1层 手报", B3),
        "L2-D001.state": PointPlace("5号楼 1层 烟感", B5),
    }
    gst = DeviceInfo("e1", "fire-2", "fire_panel", points=tuple(places), places=places)
    t = fire_panel_timeline(gst)
    t.at(0, reading("L1-D001.state", "fire", "fire-2"))
    assert [x.rule for x in t.at(5, reading("L2-D001.state", "fire", "fire-2"))] == ["fire_point_state_fire"]
    raised = t.at(9, reading("L1-D002.state", "fire", "fire-2"))
    assert {x.rule for x in raised} == {"fire_point_state_fire", "fire_confirmed_state"}
    [confirmed] = [x for x in raised if x.rule == "fire_confirmed_state"]
    assert confirmed.zone == B3


def test_bound_device_info_carries_the_site_tables_labels_and_zones() -> None:
    config = DeviceConfig.model_validate(
        {"id": "fire-1", "family": "fire_panel", "profile": "notifier_site_example", "location": "消防控制室",
         "zone": B3, "modbus": {"host": "127.0.0.1", "port": 5020, "unit_id": 2}}
    )  # fmt: skip
    info = BoundDevice("e1", config, ProfileLibrary().get("notifier_site_example")).info
    assert info.location_of("L2-D001.fire") == "5号楼 1层 烟感 大堂" and info.zone_of("L2-D001.fire") == B5
    assert info.location_of("panel.silenced") == "消防控制室" and info.zone_of("panel.silenced") == B3
    assert info.location_of(None) == "消防控制室" and info.zone_of(None) == B3
    assert "panel.silenced" not in info.places and len(info.places) == 48
