"""Fire panels with site tables over real Modbus TCP on 127.0.0.1: what the driver decodes equals what
the simulator was told; the shipped `fire` scenario, played by the simulation host against the demo
estate's two panels, raises what the control room needs (labels, first-out, one incident per building);
a silent panel raises its offline alarm at the priority the defaults give it and returns online."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from drivers.modbus_device import ModbusDeviceDriver
from drivers.profiles import ModbusProfile, ProfileLibrary
from drivers.sim.host import SimulationHost
from drivers.sim.points import SimValue
from drivers.sim.scenario import load_scenario
from drivers.stats import DeviceStats
from drivers.transports.modbus import ModbusEndpoint
from gateway.alerts import AlertEngine, Transition
from gateway.alerts.rules import load_default_rules
from gateway.config import GatewayConfig
from gateway.incidents.manager import IncidentManager
from gateway.model import Envelope, Incident, ManualClock, Priority, Quality, Reading
from gateway.runtime.broker import free_port
from gateway.runtime.build import bind_devices
from tests.integration.test_drivers_profiles import rig_for

pytestmark = pytest.mark.integration
DEMO = Path(__file__).parents[2] / "deploy" / "examples" / "demo-estate.yaml"
GST_STATES = ["normal", "fire", "fault", "disabled"]
B3, B5 = "3号楼", "5号楼"


def _profile(name: str) -> ModbusProfile:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, ModbusProfile)
    return profile


# -- decoding: the site tables' points over the wire equal the simulator's truth --------------------
async def test_notifier_site_table_decodes_every_point_bit() -> None:
    profile = _profile("notifier_site_example")
    names = [p.name for p in profile.points]
    rng = random.Random(20240611)
    async with rig_for(profile) as rig:
        scenes = [dict.fromkeys(names, False), dict.fromkeys(names, True)]
        scenes += [{name: rng.random() < 0.3 for name in names} for _ in range(6)]
        for scene in scenes:
            rig.model.values = dict[str, SimValue](scene)
            got = await rig.poll()
            assert {name: got[name].value for name in names} == scene
        assert rig.driver.stats.errors == {}


async def test_gst_site_table_decodes_every_device_state() -> None:
    profile = _profile("gst_site_table_example")
    names = [p.name for p in profile.points]
    rng = random.Random(20240612)
    async with rig_for(profile) as rig:
        scenes = [dict.fromkeys(names, label) for label in GST_STATES]
        scenes += [{name: rng.choice(GST_STATES) for name in names} for _ in range(6)]
        for scene in scenes:
            rig.model.values = dict[str, SimValue](scene)
            got = await rig.poll()
            assert {name: got[name].value for name in names} == scene
        assert rig.driver.stats.errors == {}
        assert len(rig.driver.blocks) == 1


# -- the demo estate's fire panels through the alert core --------------------------------------------
def _fire_config(port: int) -> GatewayConfig:
    """The demo estate's fire panels as the demo configures them, on a free port."""
    demo = YAML(typ="safe").load(DEMO.read_text(encoding="utf-8"))
    estate = demo["estates"][0]
    panels = [d for d in estate["devices"] if d["family"] == "fire_panel"]
    for panel in panels:
        panel["modbus"] = {**panel["modbus"], "port": port, "timeout": 0.2}
    return GatewayConfig.model_validate(
        {"estates": [{"id": estate["id"], "name": estate["name"], "devices": panels}]}
    )


class Control:
    """The runtime's path minus its queues: one driver per panel on a shared endpoint, the alert core with
    the default rules over the bound devices' info, and the incident manager."""

    def __init__(self, config: GatewayConfig) -> None:
        bound, issues = bind_devices(config)
        assert not issues
        self.clock = ManualClock()
        self.engine = AlertEngine(load_default_rules(), [b.info for b in bound], self.clock)
        self.manager = IncidentManager()
        modbus = bound[0].config.modbus
        assert modbus is not None
        self.endpoint = ModbusEndpoint(modbus.host, modbus.port, timeout=modbus.timeout)
        self.drivers = []
        for b in bound:
            assert isinstance(b.profile, ModbusProfile) and b.config.modbus is not None
            self.drivers.append(
                ModbusDeviceDriver(
                    b.estate,
                    b.config.id,
                    b.profile,
                    self.endpoint,
                    b.config.modbus.unit_id,
                    1.0,
                    b.config.offline_after,
                    DeviceStats(),
                    self.clock,
                )
            )
        self.offline_after = max(b.config.offline_after for b in bound)
        self.latest: dict[tuple[str, str], Reading] = {}
        self.transitions: list[Transition] = []
        self.incidents: dict[int, Incident] = {}  # by id(): the manager assigns no ids without a store

    async def _emit(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if isinstance(item, Reading):
                self.latest[(item.device, item.point)] = item
            self._apply(self.engine.process(item))

    def _apply(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            self.transitions.append(transition)
            change = self.manager.apply(transition)
            if change is not None:
                self.incidents[id(change.incident)] = change.incident

    async def poll(self) -> None:
        """Enough polls that a silent panel is declared offline."""
        for _ in range(self.offline_after):
            for driver in self.drivers:
                await driver.poll_once(self._emit)
        self._apply(self.engine.tick())

    def value(self, device: str, point: str) -> object:
        reading = self.latest[(device, point)]
        assert reading.quality is Quality.GOOD, (device, point, reading.quality)
        return reading.value

    def raised(self, rule: str) -> list[str]:
        """Points (or devices) where `rule` became active, in order."""
        keys = [t.key.split("/", 3) for t in self.transitions if t.rule == rule and t.active]
        return [key[3] if len(key) == 4 else key[1] for key in keys]  # estate/device/rule[/point]

    def incident_of(self, device: str, rule: str, point: str) -> Incident:
        return self.manager.by_key[f"sunshine/{device}/{rule}/{point}"]


@asynccontextmanager
async def demo_fire_panels() -> AsyncIterator[tuple[SimulationHost, Control]]:
    config = _fire_config(free_port())
    async with SimulationHost(config) as host:
        control = Control(config)
        try:
            await control.poll()
            yield host, control
        finally:
            control.endpoint.close()


async def test_the_fire_scenario_plays_every_state_and_the_control_room_sees_places() -> None:
    scenario = load_scenario("fire")
    async with demo_fire_panels() as (host, c):
        for step in sorted(scenario.steps, key=lambda s: s.at):
            c.clock.advance(step.at - c.clock.monotonic())
            await host.apply(step.device, step.do, step.args)
            await c.poll()
            if step.do == "set":  # by point name, decoded from the wire as the scenario said
                assert {n: c.value(step.device, n) for n in step.args} == step.args, step.say

    # Every state of both kinds of panel was played and raised its rule.
    assert c.raised("fire_point_disabled") == ["L1-D004.disabled"]
    assert c.raised("fire_point_pre_alarm") == ["L1-D003.pre_alarm", "L1-D005.pre_alarm", "L2-D002.pre_alarm"]
    assert c.raised("fire_point_fault") == ["L2-D003.fault"]
    assert c.raised("fire_point_fire") == ["L1-D003.fire", "L1-M001.fire"]
    assert c.raised("fire_point_state_fault") == ["L1-D010.state"]
    assert c.raised("fire_point_state_fire") == ["L2-D003.state"]
    assert c.raised("fire_point_state_disabled") == ["L1-D002.state"]
    assert c.raised("fire_confirmed") == [B3]  # 3号楼: detector + call point; 5号楼: one point only
    assert c.raised("fire_confirmed_state") == []

    # One incident per building for the non-critical alarms, across both panels.
    b3 = c.incident_of("fire-1", "fire_point_disabled", "L1-D004.disabled")
    assert b3.zone == B3 and b3.priority is Priority.HIGH
    assert b3 is c.incident_of("fire-2", "fire_point_state_fault", "L1-D010.state")
    assert b3 is c.incident_of("fire-1", "fire_point_pre_alarm", "L1-D005.pre_alarm")
    assert b3 is c.incident_of("fire-2", "fire_point_state_disabled", "L1-D002.state")
    b5 = c.incident_of("fire-1", "fire_point_pre_alarm", "L2-D002.pre_alarm")
    assert b5 is not b3 and b5.zone == B5
    assert b5 is c.incident_of("fire-1", "fire_point_fault", "L2-D003.fault")
    assert b5.title == "火灾预警：fire-1 L2-D002.pre_alarm（5号楼 2层 烟感 走廊）"

    # 首警: the first fire is kept and shown with its label; later fires point back to it.
    first = c.incident_of("fire-1", "fire_point_fire", "L1-D003.fire")
    assert first.first_out and first.title == "火警：fire-1 L1-D003.fire（3号楼 2层 烟感 走廊东）"
    gst_fire = c.incident_of("fire-2", "fire_point_state_fire", "L2-D003.state")
    assert not gst_fire.first_out and gst_fire.title.endswith("（5号楼 2层 烟感 走廊）")
    [sequence] = [e for e in gst_fire.timeline if e.action == "fire_sequence"]
    assert sequence.detail["first_out_alarm"] == first.alarm_key
    assert first.latched  # reset at the panel: still latched until acknowledged

    # The silent panel: its own high incident (the panel serves two buildings: no zone), then back.
    [offline] = [t for t in c.transitions if t.rule == "offline_fire_panel" and t.active]
    assert offline.device == "fire-1" and offline.priority is Priority.HIGH and offline.zone == ""
    silent = c.manager.by_key["sunshine/fire-1/offline_fire_panel"]
    assert silent not in (b3, b5) and not silent.active
    assert c.value("fire-1", "online") is True and c.value("fire-2", "online") is True


async def test_a_silent_fire_panel_is_an_offline_alarm_until_it_answers_again() -> None:
    [rule] = [r for r in load_default_rules() if r.id == "offline_fire_panel"]
    assert rule.priority in (Priority.HIGH, Priority.CRITICAL)  # loss of fire monitoring (DEVICES.md)
    async with demo_fire_panels() as (host, c):
        await host.apply("fire-1", "set", {"L1-D003.fault": True})
        await c.poll()
        assert c.raised("offline_fire_panel") == []

        await host.apply("fire-1", "fault", {"silent": True})
        await c.poll()
        [down] = [t for t in c.transitions if t.rule == "offline_fire_panel"]
        assert down.active and down.priority is rule.priority and down.device == "fire-1"
        assert "消防主机 fire-1 通讯中断" in down.message_zh
        assert c.latest[("fire-1", "L1-D003.fault")].quality is Quality.STALE  # not frozen as good
        assert c.value("fire-2", "online") is True  # its neighbour on the same endpoint still answers
        incident = c.manager.by_key["sunshine/fire-1/offline_fire_panel"]
        assert incident.active and incident.priority is rule.priority

        await host.apply("fire-1", "fault", {})
        await c.poll()
        up = c.transitions[-1] if c.transitions[-1].rule == "offline_fire_panel" else None
        assert up is not None and not up.active
        assert c.value("fire-1", "online") is True and c.value("fire-1", "L1-D003.fault") is True
        assert not incident.active  # returned to normal, waiting for its acknowledgement
