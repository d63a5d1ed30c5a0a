"""open_door to an MQTT-bridged controller, end to end on real parts: API → MqttCommander → the gateway's
broker connection → the simulated controller → its state report → the PointWatch → the outcome."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from drivers.mqtt_commands import MqttCommander
from drivers.profiles.loader import SHIPPED
from drivers.sim.host import SimulationHost
from gateway.config import parse_config
from gateway.runtime.broker import MosquittoProcess
from tests.integration.stack import TOKENS, Stack

pytestmark = pytest.mark.integration
URL = "/devices/sunshine/{device}/commands"


def _site(broker: MosquittoProcess, tmp_path: Path) -> str:
    return f"""\
gateway_id: test-gw
mqtt: {{host: 127.0.0.1, port: {broker.port}, client_id: eg-test-{uuid.uuid4().hex[:8]}}}
store: {{path: "{tmp_path / "gw.db"}"}}
profile_dirs: ["{tmp_path / "profiles"}"]
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - {{name: control-room, token: "{TOKENS["operator"]}", role: operator, estates: ["*"]}}
    - {{name: duty-manager, token: "{TOKENS["supervisor"]}", role: supervisor, estates: [sunshine]}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    gate_hours: "00:00-24:00"
    devices:
      - id: gate-north
        family: access_gate
        profile: generic_access_gate
        commands: {{open_door: operator}}
        mqtt: {{topic: "estate/sunshine/access_gate/gate-north/+", vars: {{door: 2}}}}
      - id: gate-south
        family: access_gate
        profile: generic_access_gate
        mqtt: {{topic: "estate/sunshine/access_gate/gate-south/+"}}
"""


@asynccontextmanager
async def gates(broker: MosquittoProcess, tmp_path: Path) -> AsyncIterator[Stack]:
    # A site copy of the shipped profile that waits 1 s for the proof, so the timeout case is quick.
    (tmp_path / "profiles").mkdir()
    shipped = (SHIPPED / "generic_access_gate.yaml").read_text(encoding="utf-8")
    assert "within: 5" in shipped
    site_profile = shipped.replace("within: 5", "within: 1")
    (tmp_path / "profiles" / "generic_access_gate.yaml").write_text(site_profile, encoding="utf-8")
    config = parse_config(_site(broker, tmp_path), "site.yaml", {})
    async with SimulationHost(config, heartbeat_interval=1.0) as host:
        stack = Stack(config, host)
        try:
            await stack.start_gateway()
            yield stack
        finally:
            await stack.stop_gateway()


async def _command(s: Stack, device: str, role: str = "operator") -> Any:
    body = {"command": "open_door", "reason": "访客忘带卡 visitor without a card"}
    return await s.api("POST", URL.format(device=device), role=role, json=body)


async def test_open_door_round_trips_times_out_and_is_refused_where_not_allowed(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with gates(broker, tmp_path) as s:
        assert s.app is not None
        north = s.host.mqtt_devices["gate-north"]
        north.door_hold = 0.3
        commander = s.app.commanders[("sunshine", "gate-north")]
        assert isinstance(commander, MqttCommander)
        assert ("sunshine", "gate-south") not in s.app.commanders

        refused = await _command(s, "gate-south")
        assert refused.status_code == 403  # the site config allows no command on this door

        opened = (await _command(s, "gate-north")).json()
        assert opened["outcome"] == "ok", opened
        assert "door_open = True" in opened["detail"]
        [sent] = north.commands
        assert sent["command"] == "open_door" and sent["door"] == 2  # the device's vars, as a number
        assert len(sent["request_id"]) == 32
        await s.until(lambda: commander.watch.latest.get("door_open") is False, 3, "the door shuts again")

        north.answer_commands = False  # the command arrives; the lock does not move
        await asyncio.sleep(2.05)  # the API's rate limit: one command per 2 s per device
        stuck = (await _command(s, "gate-north")).json()
        assert stuck["outcome"] == "timeout", stuck
        assert "door_open is not reported after 1 s" in stuck["detail"]
        assert len(north.commands) == 2

        audit = (await s.api("GET", "/audit", role="supervisor")).json()
        outcomes = [(a["target"], a["outcome"]) for a in audit if a["action"] == "command:open_door"]
        assert sorted(outcomes) == sorted(
            [("gate-south", "forbidden"), ("gate-north", "ok"), ("gate-north", "timeout")]
        )
        devices = {d["device"]: d for d in (await s.api("GET", "/devices")).json()}
        assert devices["gate-north"]["errors"] == {}  # its own commands echoed back are not errors
