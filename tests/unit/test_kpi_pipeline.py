"""The KPI engine behind the real alert core and the shipped default rules: the transitions it classifies
(offline by heartbeat, glob fire-point faults, septic levels) are the ones the core really produces."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.alerts import AlertEngine, DeviceInfo, load_default_rules
from gateway.config.kpi import KpiConfig
from gateway.kpi import KpiEngine, KpiEstate
from gateway.model import ManualClock, Reading, Value

ESTATE = "sunshine"
PANEL = DeviceInfo(
    ESTATE, "panel-1", "fire_panel", points=("1-001.fire", "1-001.fault", "1-002.fire", "1-002.fault")
)
GATE = DeviceInfo(ESTATE, "gate-1", "access_gate", heartbeat_timeout=60, points=("door_open", "online"))
SEPTIC = DeviceInfo(ESTATE, "septic-1", "septic_pressure", points=("pressure", "online"))


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


class Core:
    """Alert engine → KPI engine, the way the pipeline hands batches on."""

    def __init__(self) -> None:
        self.clock = ManualClock(local("2026-11-23T00:00"))
        devices = [PANEL, GATE, SEPTIC]
        self.alerts = AlertEngine(load_default_rules(), devices, self.clock)
        rules = load_default_rules()
        spec = KpiEstate(ESTATE, devices=tuple(devices))
        offline = [r.id for r in rules if r.kind == "offline"]
        self.kpi = KpiEngine([spec], KpiConfig(), self.clock, offline_rules=offline)

    def read(self, device: str, point: str, value: Value) -> None:
        reading = Reading(int(self.clock.now() * 1e9), ESTATE, device, point, value)
        self.kpi.observe([reading], self.alerts.process(reading))

    def wait(self, seconds: float, step: float = 1.0, talking: str = "") -> None:
        """Tick the core every `step` s; the `talking` device sends its door contact each time."""
        for _ in range(int(seconds / step)):  # bounded: one tick per simulated step
            self.clock.advance(step)
            if talking:
                self.read(talking, "door_open", False)
            self.kpi.observe([], self.alerts.tick())


def test_real_transitions_drive_the_rates() -> None:
    core = Core()
    core.read("panel-1", "1-001.fault", False)
    core.read("panel-1", "1-002.fault", False)
    core.read("gate-1", "door_open", False)
    core.read("septic-1", "pressure", 10.0)
    core.wait(3600, step=60)  # 01:00; the gate keeps quiet: offline by heartbeat after 60 s
    core.read("gate-1", "door_open", False)  # back
    core.read("panel-1", "1-002.fault", True)  # glob rule fire_point_fault on point 1-002.fault
    core.read("septic-1", "pressure", 19.0)  # septic_high after its 5 s on-delay
    core.wait(1800, step=5, talking="gate-1")
    core.read("panel-1", "1-002.fault", False)
    core.read("septic-1", "pressure", 10.0)
    core.wait(1800, step=60, talking="gate-1")  # 02:00
    values = core.kpi.day(ESTATE, date(2026, 11, 23)).values
    # two points x 2 h, one in fault 30 min: (240 - 30) / 240
    assert values["fire_intact_rate"] == pytest.approx(100 * 210 / 240, abs=1e-3)
    # septic high from 01:00:05 to 01:30 (its clear has no off-delay): 1795 s of 7200 s
    assert values["septic_intact_rate"] == pytest.approx(100 * (7200 - 1795) / 7200, abs=1e-3)
    # the gate: silent for more than 60 s at the 00:02 tick (ticks every 60 s), back at 01:00
    gate_offline = 3600 - 120
    panel_fault, total = 1800, 3 * 7200  # septic high is a level, not an equipment fault
    expected = 100 * (total - gate_offline - panel_fault) / total
    assert values["equipment_intact_rate"] == pytest.approx(expected, abs=1e-3)
    assert values["alarms"] == 3  # offline, fault, septic high
