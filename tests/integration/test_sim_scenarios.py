"""The shipped gate-controller scenario, played fast against the gateway on real parts: each of its
stories raises the alarm the default rules promise (denied burst, forced, held open, after hours)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from drivers.sim.host import SimulationHost
from drivers.sim.scenario import Step, load_scenario, play
from gateway.config import parse_config
from gateway.runtime.broker import MosquittoProcess
from tests.integration.stack import TOKENS, Stack

pytestmark = pytest.mark.integration


def _closed_today(broker: MosquittoProcess, tmp_path: Path) -> str:
    """gate-north as in the demo estate, on a day the gates are closed: every entry is after hours."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    days = ", ".join(str(today + timedelta(days=n)) for n in (-1, 0, 1))  # whatever the test's timing
    return f"""\
mqtt: {{host: 127.0.0.1, port: {broker.port}, client_id: eg-test-{uuid.uuid4().hex[:8]}}}
store: {{path: "{tmp_path / "gw.db"}"}}
api:
  host: 127.0.0.1
  port: 0
  tokens: [{{name: control-room, token: "{TOKENS["operator"]}", role: operator}}]
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    holidays: [{days}]
    devices:
      - id: gate-north
        family: access_gate
        profile: generic_access_gate
        mqtt: {{topic: "estate/sunshine/access_gate/gate-north/+"}}
"""


async def test_gates_scenario_raises_each_story_s_alarm(broker: MosquittoProcess, tmp_path: Path) -> None:
    config = parse_config(_closed_today(broker, tmp_path), "site.yaml", {})
    scenario = load_scenario("gates")
    assert {step.device for step in scenario.steps} == {"gate-north"}
    async with SimulationHost(config, heartbeat_interval=1.0) as host:
        s = Stack(config, host)
        try:
            await s.start_gateway()
            await play(scenario, host, speed=25)
            expected = {"gate_denied_burst", "gate_door_forced", "gate_door_held", "gate_after_hours_entry"}
            await s.until(lambda: expected <= {i.change.incident.rule for i in s.opened()}, 5, "alarms")
            [burst] = s.opened("gate_denied_burst")
            assert burst.change.incident.priority.value == "medium"
            assert s.app is not None
            stats = s.app.stats.for_device("sunshine", "gate-north")
            await s.until(lambda: stats.events == 2 + 6 + 2, 3, "every event")  # 2 granted, 6 denied, ...
            assert stats.readings >= 2 and not stats.errors  # door contact open, then shut
        finally:
            await s.stop_gateway()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"count": 3}, "a burst needs 'kind'"),
        ({"kind": "card_denied"}, "a burst needs 'count'"),
        ({"kind": "card_denied", "count": 3, "within": -1}, "'within' is seconds >= 0"),
    ],
)
def test_a_burst_step_is_checked_when_the_scenario_loads(args: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Step(at=0, device="gate-north", do="burst", args=args)
