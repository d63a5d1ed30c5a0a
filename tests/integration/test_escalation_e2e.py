"""Escalation end to end: a fire point on the (pymodbus) panel simulator → incident → the ladder through
real channels to local receivers (signed webhook, DingTalk robot), acknowledged by its one-click link;
and a gateway killed with SIGKILL between steps, restarted: the next step fires once and only once.

Times are shrunk by config: steps at 0, 2 and 5 s instead of 0, 60 and 180 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.sim.host import SimulationHost
from gateway.config import parse_config
from gateway.escalation.channels import verify_signature
from gateway.runtime.app import App
from gateway.runtime.broker import free_port
from tests.integration.receivers import HttpReceiver, Reply

pytestmark = pytest.mark.integration
HOOK_SECRET = "hook-secret-0123456789abc"
CLI = [sys.executable, "-m", "gateway.runtime.cli"]


def site(db: Path, modbus: int, hook: HttpReceiver, ding: HttpReceiver, api_port: int = 0) -> str:
    return f"""\
store: {{path: "{db}"}}
api:
  host: 127.0.0.1
  port: {api_port}
  tokens: [{{name: control-room, token: "operator-token-0123456789", role: operator}}]
escalation:
  public_url: "http://127.0.0.1:{api_port or 8080}"
  link_secret: "link-secret-0123456789abcdef"
  tick: 0.1
  backoff: 0.2
  channels:
    - {{type: webhook, name: hook, url: "{hook.url("/notify")}", secret: "{HOOK_SECRET}"}}
    - type: dingtalk
      name: ding
      url: "{ding.url("/robot/send?access_token=t")}"
      secret: "SECdingtalk-secret-0123"
  policies:
    - id: fire
      priorities: [critical]
      rules: ["fire_*"]
      steps:
        - {{after: 0, notify: [control_room], channels: [hook, ding]}}
        - {{after: 2, notify: [duty_manager], channels: [hook]}}
        - {{after: 5, notify: [estate_manager, fire_liaison], channels: [hook]}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    duty:
      people:
        - {{id: li, name: 李明, phone: "+8613800000001"}}
        - {{id: wang, name: 王芳, phone: "+8613800000003"}}
        - {{id: chen, name: 陈刚, phone: "+8613800000006"}}
      shifts: {{24h: "08:00-08:00+1"}}
      roles:
        control_room: {{24h: [li]}}
        duty_manager: {{24h: [wang]}}
        estate_manager: {{24h: [chen]}}
        fire_liaison: {{24h: []}}
    devices:
      - id: fire-1
        family: fire_panel
        profile: notifier_demo_loop1
        poll_interval: 0.2
        modbus: {{host: 127.0.0.1, port: {modbus}, unit_id: 2, timeout: 0.3}}
"""


def steps(hook: HttpReceiver) -> list[tuple[int, str]]:
    return [(r.json()["notification"]["step"], r.json()["person"]) for r in hook.requests]


async def until(predicate: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def receivers() -> AsyncIterator[tuple[HttpReceiver, HttpReceiver]]:
    hook, ding = await HttpReceiver().start(), await HttpReceiver().start()
    try:
        yield hook, ding
    finally:
        await hook.stop()
        await ding.stop()


@asynccontextmanager
async def running(
    tmp_path: Path, hook: HttpReceiver, ding: HttpReceiver
) -> AsyncIterator[tuple[App, SimulationHost]]:
    """The gateway in this process with the fire panel simulator, stopped on the way out."""
    config = parse_config(site(tmp_path / "gw.db", free_port(), hook, ding), "site.yaml", {})
    async with SimulationHost(config) as host:
        app, stop = App(config), asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        await asyncio.wait_for(app.ready.wait(), 10)
        try:
            yield app, host
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_fire_ladder_stops_when_acknowledged_by_its_link(tmp_path: Path) -> None:
    async with receivers() as (hook, ding), running(tmp_path, hook, ding) as (app, host):
        await host.apply("fire-1", "set", {"L1-D002.fire": True})
        await until(lambda: len(hook.requests) >= 1, 5, "the control room notified")
        first = hook.requests[0]
        headers = first.headers
        stamp, signature = (
            headers["x-estate-gateway-timestamp"],
            headers["x-estate-gateway-signature"],
        )
        assert verify_signature(HOOK_SECRET, stamp, signature, first.body, time.time())
        assert not verify_signature("another-secret-0123456789", stamp, signature, first.body, time.time())
        body = first.json()
        assert body["person"] == "li" and body["notification"]["step"] == 0
        assert "阳光花园" in body["text"]["zh"] and "Sunshine Garden" in body["text"]["en"]
        assert len(ding.requests) == 0  # the first channel delivered: no fall-over
        await until(lambda: len(hook.requests) >= 2, 5, "the duty manager notified at 2 s")
        assert steps(hook) == [(0, "li"), (1, "wang")]
        link = hook.requests[1].json()["notification"]["ack_url"]
        token = link.rsplit("/", 1)[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}") as client:
            page = await client.get(f"/ack/{token}")  # a chat app's preview: shows, does not ack
            assert page.status_code == 200 and "确认" in page.text
            incident_id = body["notification"]["incident_ids"][0]
            assert (await app.service.get(incident_id)).state.value == "open"  # type: ignore[union-attr]
            acked = await client.post(f"/ack/{token}")
            assert acked.status_code == 200 and "已确认" in acked.text
            forged = await client.post(f"/ack/{token[:-3]}abc")
            assert forged.status_code == 403
        await asyncio.sleep(4)  # past the 5 s step
        assert steps(hook) == [(0, "li"), (1, "wang")]  # the ack stopped the ladder
        incident = await app.service.get(incident_id)
        assert incident is not None and incident.acknowledged_by == "link:wang"
        actions = [e.action for e in incident.timeline]
        assert actions.count("notified") == 2 and "acknowledged" in actions
        health = app.health()
        assert health["notifications_sent"] == 2 and health["channels_failing"] == []
        p50, p99 = health["notify_delay_s"]["p50"], health["notify_delay_s"]["p99"]
        assert p50 is not None and p99 is not None and p99 < 1.0
        print(f"\ndue → sent delay: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


async def test_a_failing_channel_falls_over_and_shows_in_health(tmp_path: Path) -> None:
    async with receivers() as (hook, ding):
        hook.default = Reply(500, {"error": "down"})
        async with running(tmp_path, hook, ding) as (app, host):
            await host.apply("fire-1", "set", {"L1-D002.fire": True})
            await until(lambda: len(ding.requests) >= 1, 8, "the fall-over to DingTalk")
            assert len(hook.requests) == 3  # three tries with backoff, then the next channel
            assert "timestamp" in ding.requests[0].query and "sign" in ding.requests[0].query
            await until(
                lambda: "hook" in app.health()["channels_failing"], 3, "the failing channel in health"
            )


async def test_kill_9_between_steps_then_restart_fires_the_next_step_once(tmp_path: Path) -> None:
    async with receivers() as (hook, ding):
        modbus, api_port = free_port(), free_port()
        text = site(tmp_path / "gw.db", modbus, hook, ding, api_port)
        (tmp_path / "site.yaml").write_text(text, encoding="utf-8")
        config = parse_config(text, "site.yaml", {})
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [*CLI, "run", str(tmp_path / "site.yaml")], cwd=tmp_path, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

        async with SimulationHost(config) as host:
            proc = start()
            try:
                await host.apply("fire-1", "set", {"L1-D002.fire": True})
                await until(lambda: len(hook.requests) >= 1, 15, "step 0 from the first process")
                proc.send_signal(signal.SIGKILL)
                proc.wait(5)
                await asyncio.sleep(3)  # step 1 (2 s) comes due while the gateway is dead
                assert steps(hook) == [(0, "li")]
                proc = start()
                await until(lambda: len(hook.requests) >= 2, 15, "the overdue step 1 after the restart")
                await until(lambda: len(hook.requests) >= 3, 15, "step 2 at its due time")
                # step 2 waited for its due time: 5 s after the incident opened, when step 0 went out (the
                # kill's own moment is later than that by the first process's send and the kill's wait)
                assert hook.requests[2].at - hook.requests[0].at >= 4.5
                await asyncio.sleep(1.5)
                assert steps(hook) == [(0, "li"), (1, "wang"), (2, "chen")]  # each once; fire_liaison empty
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
