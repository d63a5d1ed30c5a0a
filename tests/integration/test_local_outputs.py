"""Local outputs end to end: the fire panel simulator (pymodbus) raises a critical fire, and the siren relay
on the simulated Modbus relay board (pymodbus, the same real Modbus TCP the gateway polls) is pulsed:
- as an escalation step, when nobody acknowledges it (then the coil is read back OFF with a pymodbus
  client, and the pulse is in the audit trail and the console's estate page);
- by the uplink fallback, when the webhook receiver refuses connections for `after` seconds; with the
  receiver up, the same alarm does not sound the siren.

Times are shrunk by config: the siren step at 1.5 s, the fallback after 1 s, a 0.3 s pulse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from drivers.sim.host import SimulationHost
from drivers.sim.relay_board import RelayBoardModel
from gateway.config import parse_config
from gateway.runtime.app import App
from gateway.runtime.broker import free_port
from tests.integration.receivers import HttpReceiver

pytestmark = pytest.mark.integration
TOKEN = "operator-token-0123456789"
RELAY_PROFILE = """\
# Test copy of relay_board_8ch (Source: shared/DEVICES.md) with a short siren pulse.
protocol: modbus
family: local_output
description: 8-channel relay board, short pulses for tests
points:
  - {name: relay1_siren, table: coil, address: 0, type: bool}
  - {name: relay2_strobe, table: coil, address: 1, type: bool}
pulses:
  siren: {coil: 0, seconds: 0.3}
  strobe: {coil: 1, seconds: 0.3}
"""


def site(tmp_path: Path, modbus: int, hook_url: str, siren_step: bool) -> str:
    steps = "        - {after: 0, notify: [control_room], channels: [hook]}\n"
    if siren_step:
        steps += "        - {after: 1.5, notify: [control_room], channels: [siren]}\n"
    fallback = "" if siren_step else "    local_fallback: {after: 1.0, outputs: [siren]}\n"
    return f"""\
store: {{path: "{tmp_path / "gw.db"}"}}
profile_dirs: ["{tmp_path / "profiles"}"]
api:
  host: 127.0.0.1
  port: 0
  tokens: [{{name: control-room, token: "{TOKEN}", role: operator}}]
escalation:
  tick: 0.1
  attempts: 1
  group_interval: 0
  channels:
    - {{type: webhook, name: hook, url: "{hook_url}", secret: "hook-secret-0123456789abc", timeout: 1}}
    - {{type: modbus_relay, name: siren, estate: sunshine, device: relay-1, command: siren, min_interval: 0}}
  policies:
    - id: fire
      priorities: [critical]
      rules: ["fire_*"]
      steps:
{steps}estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
{fallback}    devices:
      - id: fire-1
        family: fire_panel
        profile: notifier_demo_loop1
        poll_interval: 0.2
        modbus: {{host: 127.0.0.1, port: {modbus}, unit_id: 2, timeout: 0.3}}
      - id: relay-1
        family: local_output
        profile: relay_board_test
        location: 岗亭 guard house
        poll_interval: 0.5
        modbus: {{host: 127.0.0.1, port: {modbus}, unit_id: 3, timeout: 0.3}}
"""


async def until(predicate: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    tmp_path: Path, hook_url: str, siren_step: bool
) -> AsyncIterator[tuple[App, SimulationHost]]:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "relay_board_test.yaml").write_text(RELAY_PROFILE, encoding="utf-8")
    modbus = free_port()
    config = parse_config(site(tmp_path, modbus, hook_url, siren_step), "site.yaml", {})
    async with SimulationHost(config) as host:
        app, stop = App(config, base_dir=tmp_path), asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        await asyncio.wait_for(app.ready.wait(), 10)
        try:
            yield app, host
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


def board(host: SimulationHost) -> RelayBoardModel:
    model = host.models["relay-1"]
    assert isinstance(model, RelayBoardModel)
    return model


async def read_coil(port: int, address: int) -> bool:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1)
    await client.connect()
    try:
        reply = await client.read_coils(address, count=1, device_id=3)
        assert not reply.isError()
        return bool(reply.bits[0])
    finally:
        client.close()


async def test_a_critical_alarm_nobody_acknowledges_sounds_the_siren_step(tmp_path: Path) -> None:
    hook = await HttpReceiver().start()
    try:
        async with running(tmp_path, hook.url("/notify"), siren_step=True) as (app, host):
            relay = board(host)
            await host.apply("fire-1", "set", {"L1-D002.fire": True})
            await until(lambda: len(hook.requests) >= 1, 5, "the control room notified")
            assert relay.pulses == []  # not yet: the siren is the second step
            await until(lambda: relay.pulse_count("siren") >= 1, 5, "the siren pulsed at 1.5 s")
            await until(lambda: relay.pulses[0].ended is not None, 3, "the relay switched off")
            pulse = relay.pulses[0]
            assert pulse.coil == 0 and 0.25 <= pulse.ended - pulse.started < 1.5  # type: ignore[operator]
            port = host.servers[0].port
            assert await read_coil(port, 0) is False  # OFF again, read over Modbus TCP
            await until(lambda: app.health().get("local_outputs", {}).get("siren", {}).get("pulses") == 1, 3,
                        "the pulse in health")  # fmt: skip
            audit = [e for e in await app.store.list_audit(None) if e.action == "command:siren"]
            assert [(e.actor, e.estate, e.target, e.outcome) for e in audit] == [
                ("escalation:siren", "sunshine", "relay-1", "ok")
            ]
            incident_id = audit[0].detail["incidents"][0]
            incident = await app.service.get(incident_id)
            assert incident is not None and incident.escalation_level == 2
            sent = [e for e in incident.timeline if e.action == "notified" and e.detail["level"] == 2]
            assert sent and sent[0].detail["attempts"][0]["channel"] == "siren"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}") as client:
                page = await client.get(
                    "/console/estates/sunshine", headers={"Authorization": f"Bearer {TOKEN}"}
                )
            assert page.status_code == 200 and 'id="local-outputs"' in page.text and "relay-1" in page.text
            assert "从未" not in page.text.split('id="local-outputs"')[1]  # it shows the last pulse's time
            last_at = app.health()["local_outputs"]["siren"]["last_at"]
        async with running(tmp_path, hook.url("/notify"), siren_step=True) as (app, host):  # a restart
            status = app.health()["local_outputs"]["siren"]
            assert (status["last_at"], status["last_outcome"]) == (last_at, "ok")  # from the audit trail
    finally:
        await hook.stop()


@pytest.mark.parametrize("uplink", ["down", "up", "down_then_acked"])
async def test_the_fallback_sounds_only_while_every_remote_channel_fails(tmp_path: Path, uplink: str) -> None:
    hook = await HttpReceiver().start()
    if uplink != "up":
        await hook.stop()  # the port now refuses connections
    try:
        async with running(tmp_path, hook.url("/notify"), siren_step=False) as (app, host):
            relay = board(host)
            started = time.monotonic()
            await host.apply("fire-1", "set", {"L1-D002.fire": True})
            if uplink == "up":
                await until(lambda: len(hook.requests) >= 1, 5, "the webhook delivered")
                await asyncio.sleep(2.5)  # well past the fallback's 1 s
                assert relay.pulses == []
                assert app.health()["local_fallback"]["sunshine"]["uplink_down_for_s"] is None
                return
            if uplink == "down_then_acked":  # the guard saw it on the console before the `after` s
                await until(lambda: app.health()["notifications_failed"] >= 1, 5, "the webhook failing")
                [incident] = [i for i in app.service.manager.by_id.values() if i.rule == "fire_point_fire"]
                await app.service.acknowledge(incident.id, "guard")
                await asyncio.sleep(2.5)
                assert relay.pulses == []
                assert app.health()["local_fallback"]["sunshine"]["engaged"] is True  # armed, nothing pending
                return
            await until(lambda: relay.pulse_count("siren") >= 1, 8, "the siren pulsed by the fallback")
            assert time.monotonic() - started >= 1.0  # not before the uplink was down for `after`
            fallback = app.health()["local_fallback"]["sunshine"]
            assert fallback["engaged"] is True and fallback["uplink_down_for_s"] >= 1.0
            await until(lambda: app.health()["local_fallback"]["sunshine"]["sounded"] == 1, 3, "counted")
            audit = [e for e in await app.store.list_audit(None) if e.action == "command:siren"]
            assert [(e.actor, e.outcome) for e in audit] == [("escalation:local_fallback", "ok")]
            incident = await app.service.get(audit[0].detail["incidents"][0])
            assert incident is not None
            entries = [e for e in incident.timeline if e.action == "local_fallback"]
            assert len(entries) == 1 and entries[0].detail["outputs"][0]["outcome"] == "sent"
            await asyncio.sleep(1.0)
            assert relay.pulse_count("siren") == 1  # once per incident, not every tick
    finally:
        await hook.stop()
