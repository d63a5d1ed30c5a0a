"""A small estate for the guard-tour and maintenance tests: an access gate and a patrol tag reader on
MQTT (the private Mosquitto), a DSE generator on the Modbus simulator, a patrol route and duties; the
App runs on a ManualClock so tests move time, while the devices speak the real protocols."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from drivers.sim.host import SimulationHost
from gateway.config import parse_config
from gateway.model import ManualClock
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess, free_port

TZ = ZoneInfo("Asia/Shanghai")
OPERATOR = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789ab"
OTHER = "other-estate-token-012345"


def local(*args: int) -> float:
    return datetime(*args, tzinfo=TZ).timestamp()  # type: ignore[misc]


def site(mqtt_port: int, modbus_port: int, db: Path, maintenance: str = "", kpi: str = "") -> str:
    return f"""\
gateway_id: patrol-test
mqtt: {{host: 127.0.0.1, port: {mqtt_port}, client_id: eg-patrol-{uuid.uuid4().hex[:8]}}}
store: {{path: "{db}"}}
incidents: {{correlation_window: 0}}
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - {{name: control-room, token: "{OPERATOR}", role: operator, estates: ["*"]}}
    - {{name: auditor, token: "{VIEWER}", role: viewer, estates: ["*"]}}
    - {{name: maple-op, token: "{OTHER}", role: operator, estates: [maple]}}
{kpi}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    devices:
      - id: gen-1
        family: generator
        profile: dse_gencomm
        poll_interval: 0.2
        modbus: {{host: 127.0.0.1, port: {modbus_port}, unit_id: 1, timeout: 0.3}}
      - id: gate-north
        family: access_gate
        profile: generic_access_gate
        zone: 北门
        mqtt: {{topic: "estate/sunshine/access_gate/gate-north/+"}}
      - id: tags
        family: access_gate
        profile: mqtt_patrol_tag
        mqtt: {{topic: "estate/sunshine/access_gate/tags/+"}}
    patrol:
      tick_seconds: 300   # the tests evaluate themselves after moving the clock
      routes:
        - id: night
          name: {{zh: 夜间巡逻, en: Night round}}
          schedule: ["every 1h from 22:00 to 03:00"]
          tolerance_minutes: 5
          max_duration_minutes: 40
          match: {{}}
          checkpoints:
            - {{id: north, name: {{zh: 北门岗亭, en: North gatehouse}}, device: gate-north,
                event: card_granted, match: {{card: "P-0001"}}}}
            - {{id: b3, name: {{zh: 3号楼大堂, en: Building 3 lobby}}, device: tags, event: patrol_tag,
                match: {{tag: B3}}, after_minutes: 10}}
            - {{id: pool, name: {{zh: 泳池, en: Pool}}, device: tags, event: patrol_tag, match: {{tag: POOL}},
                after_minutes: 20}}
{maintenance}
  - id: maple
    name: {{zh: 枫林苑, en: Maple Court}}
"""


@dataclass
class Site:
    app: App
    host: SimulationHost
    clock: ManualClock
    http: httpx.AsyncClient

    async def until(self, predicate: Callable[[], Any], what: str, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def api(self, method: str, path: str, token: str = OPERATOR, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kw)


@asynccontextmanager
async def patrol_site(
    broker: MosquittoProcess, tmp_path: Path, start: float, maintenance: str = "", kpi: str = ""
) -> AsyncIterator[Site]:
    text = site(broker.port, free_port(), tmp_path / "gw.db", maintenance, kpi)
    config = parse_config(text, "site.yaml", {})
    clock = ManualClock(start)
    async with SimulationHost(config, heartbeat_interval=1.0) as host:
        app = App(config, clock=clock, base_dir=tmp_path)
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            ready = asyncio.create_task(app.ready.wait())
            done, _ = await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()
            assert ready in done, "gateway did not become ready in 10 s"
            s = Site(
                app, host, clock, httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}", timeout=5)
            )
            await s.until(lambda: app.mqtt is not None and app.mqtt.connected, "mqtt connected")
            await asyncio.sleep(0.3)  # subscriptions settle
            try:
                yield s
            finally:
                await s.http.aclose()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
