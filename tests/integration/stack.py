"""A whole estate on real parts for end-to-end tests: private broker (session fixture), Modbus
simulator, MQTT device simulators, the gateway App with its HTTP API on free ports."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from drivers.sim.host import SimulationHost
from gateway.config import GatewayConfig, parse_config
from gateway.incidents.feed import FeedItem
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess, free_port

TOKENS = {
    "operator": "operator-token-0123456789",
    "viewer": "viewer-token-0123456789ab",
    "other-operator": "other-op-token-0123456789",
    "supervisor": "supervisor-token-012345678",
}


def site_yaml(
    mqtt_port: int,
    modbus_port: int,
    db: Path,
    client_id: str,
    rules: str = "",
    poll: float = 0.5,
    mqtt: str = "",
) -> str:
    return f"""\
gateway_id: test-gw
mqtt: {{host: 127.0.0.1, port: {mqtt_port}, client_id: {client_id}{mqtt}}}
store: {{path: "{db}"}}
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - {{name: control-room, token: "{TOKENS["operator"]}", role: operator, estates: ["*"]}}
    - {{name: auditor, token: "{TOKENS["viewer"]}", role: viewer, estates: ["*"]}}
    - {{name: other-estate-op, token: "{TOKENS["other-operator"]}", role: operator, estates: [maple]}}
    - {{name: duty-manager, token: "{TOKENS["supervisor"]}", role: supervisor, estates: [sunshine]}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    gate_hours: "00:00-24:00"  # open round the clock: e2e tests must not depend on the hour
    devices:
      - id: gen-1
        family: generator
        profile: dse_gencomm
        location: 3号楼 地下室
        poll_interval: {poll}
        offline_after: 2
        commands:
          auto: operator
          manual: supervisor
          start: supervisor
          stop: supervisor
          test_on_load: supervisor
        modbus: {{host: 127.0.0.1, port: {modbus_port}, unit_id: 1, timeout: 0.2}}
      - id: gate-north
        family: access_gate
        profile: generic_access_gate
        heartbeat_timeout: 30
        mqtt: {{topic: "estate/sunshine/access_gate/gate-north/+"}}
      - id: fire-1
        family: fire_panel
        profile: notifier_demo_loop1
        zone: 3号楼
        poll_interval: {poll}
        modbus: {{host: 127.0.0.1, port: {modbus_port}, unit_id: 2, timeout: 0.2}}
      - id: septic-1
        family: septic_pressure
        profile: pressure_transmitter_float
        zone: 5号楼
        poll_interval: {poll}
        modbus: {{host: 127.0.0.1, port: {modbus_port}, unit_id: 3, timeout: 0.2}}
      - id: barrier-east
        family: plate_barrier
        profile: generic_anpr_json
        zone: 东门
        mqtt: {{topic: "estate/sunshine/plate_barrier/barrier-east/+"}}
  - id: maple
    name: {{zh: 枫林苑, en: Maple Court}}
    devices:
      - id: gate-b
        family: access_gate
        profile: generic_access_gate
        mqtt: {{topic: "estate/maple/access_gate/gate-b/+"}}
{rules}"""


class Stack:
    def __init__(self, config: GatewayConfig, host: SimulationHost) -> None:
        self.config, self.host = config, host
        self.app: App | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.http: httpx.AsyncClient | None = None
        self.feed: list[tuple[float, FeedItem]] = []
        self._feed_task: asyncio.Task[None] | None = None

    async def start_gateway(self) -> App:
        app = self.app = App(self.config)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(app.run(self._stop))
        ready = asyncio.create_task(app.ready.wait())
        done, _ = await asyncio.wait({ready, self._task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            self._task.result()
        assert ready in done, "gateway did not become ready in 10 s"
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}", timeout=5)
        sub = app.feed.subscribe()

        async def record() -> None:
            while True:
                item = await sub.get()
                self.feed.append((time.monotonic(), item))

        self._feed_task = asyncio.create_task(record())
        if app.mqtt is not None:
            await self.until(lambda: app.mqtt is not None and app.mqtt.connected, 10, "mqtt connected")
            await asyncio.sleep(0.3)  # subscriptions settle
        return app

    async def stop_gateway(self) -> None:
        if self._feed_task:
            self._feed_task.cancel()
        if self.http:
            await self.http.aclose()
            self.http = None
        if self._stop and self._task:
            self._stop.set()
            await asyncio.wait_for(self._task, 10)
        self.app = None

    @staticmethod
    async def until(predicate: Callable[[], Any], within: float, what: str) -> None:
        """Poll a condition on the gateway's state (no event exists for most of them) for `within` s."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within}s waiting for {what}")
            await asyncio.sleep(0.02)

    def opened(self, rule: str | None = None, device: str | None = None) -> list[FeedItem]:
        return [
            item
            for _, item in self.feed
            if item.change.new
            and (rule is None or item.change.incident.rule == rule)
            and (device is None or item.change.incident.device == device)
        ]

    async def api(self, method: str, path: str, role: str = "operator", **kw: Any) -> httpx.Response:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
        return await self.http.request(method, path, headers=headers, **kw)


@asynccontextmanager
async def estate_stack(
    broker: MosquittoProcess,
    tmp_path: Path,
    rules: str = "",
    poll: float = 0.5,
    start: bool = True,
    mqtt: str = "",
) -> AsyncIterator[Stack]:
    client_id = f"eg-test-{uuid.uuid4().hex[:8]}"  # a fresh persistent session per test
    text = site_yaml(broker.port, free_port(), tmp_path / "gw.db", client_id, rules, poll, mqtt)
    config = parse_config(text, "site.yaml", {})
    async with SimulationHost(config, heartbeat_interval=1.0) as host:
        stack = Stack(config, host)
        try:
            if start:
                await stack.start_gateway()
            yield stack
        finally:
            await stack.stop_gateway()
