"""The simulator's register-map device plays both fire panels by point name: Notifier status bits and GST
2-bit states land where DEVICES.md puts them, and a scenario naming a point or a state the panel does
not have fails at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from drivers.profiles import ModbusProfile, ProfileLibrary
from drivers.sim.points import PointsModel
from drivers.sim.scenario import SHIPPED, load_scenario

DEMO = Path(__file__).parents[2] / "deploy" / "examples" / "demo-estate.yaml"


def _model(name: str) -> PointsModel:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, ModbusProfile)
    return PointsModel(profile)


def test_notifier_states_set_their_bits_in_the_point_register() -> None:
    panel = _model("notifier_site_example")
    panel.set("L1-D003.fire", True)
    panel.set("L1-D003.fault", True)
    panel.set("L2-M001.pre_alarm", True)
    panel.set("L1-D004.disabled", True)
    assert panel.registers() == {2: 1 << 11 | 1 << 13, 600: 1 << 14, 3: 1 << 9}


def test_gst_states_set_their_bit_pair() -> None:
    panel = _model("gst_site_table_example")
    panel.set("L1-D003.state", "fire")  # register 0, slot 2: bits 4..5
    panel.set("L1-D008.state", "disabled")  # register 0, slot 7: bits 14..15
    panel.set("L2-D002.state", "fault")  # register 4, slot 1: bits 2..3
    assert panel.registers() == {0: 0b01 << 4 | 0b11 << 14, 4: 0b10 << 2}
    panel.set("L1-D003.state", "normal")
    assert panel.registers()[0] == 0b11 << 14


def test_a_point_or_state_the_panel_does_not_have_fails_when_set() -> None:
    with pytest.raises(ValueError, match=r"no point 'L1-D099\.fire'"):
        _model("notifier_site_example").set("L1-D099.fire", True)
    with pytest.raises(ValueError, match="no enum label 'alarm'"):
        _model("gst_site_table_example").set("L1-D001.state", "alarm")


def test_shipped_scenarios_name_only_points_the_demo_panels_have() -> None:
    demo = YAML(typ="safe").load(DEMO.read_text(encoding="utf-8"))
    profiles = {d["id"]: d["profile"] for d in demo["estates"][0]["devices"]}
    checked = 0
    for path in sorted(SHIPPED.glob("*.yaml")):
        for step in load_scenario(str(path)).steps:
            profile = ProfileLibrary().get(profiles[step.device])
            if step.do != "set" or not isinstance(profile, ModbusProfile) or profile.family != "fire_panel":
                continue
            model = PointsModel(profile)
            for name, value in step.args.items():
                model.set(name, value)
                checked += 1
    assert checked >= 20
