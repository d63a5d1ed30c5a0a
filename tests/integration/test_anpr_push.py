"""ANPR cameras pushing over HTTP to the gateway, the vehicle registry deciding, and a barrier lane on a
Modbus relay module: real HTTP (uvicorn), real Modbus TCP (pymodbus simulator), real SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.sim.barrier import BarrierModel
from drivers.sim.host import SimulationHost
from drivers.sim.scenario import Scenario, play
from gateway.config import parse_config
from gateway.runtime.app import App
from gateway.runtime.broker import free_port

pytestmark = pytest.mark.integration
OPERATOR, VIEWER = "operator-token-0123456789", "viewer-token-0123456789ab"
CAM_TOKEN = "camera-secret-0123456789"


def site(db: Path, modbus_port: int) -> str:
    return f"""\
store: {{path: "{db}"}}
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - {{name: control-room, token: "{OPERATOR}", role: operator}}
    - {{name: auditor, token: "{VIEWER}", role: viewer}}
http_push: {{host: 127.0.0.1, port: 0, commit_wait: 2}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    gate_hours: "00:00-24:00"
    vehicles:
      residents: [{{plate: 粤B12345, label: 3-1502 张先生}}]
      visitors: [{{plate: 粤A88888, label: 访客 5-201, valid_until: 2099-01-01T00:00:00}}]
      blacklist: [{{plate: 粤B66666, label: 欠费拖车}}]
    devices:
      - id: cam-east-in
        family: plate_barrier
        profile: alphadigi_http
        lane_direction: in
        zone: 东门
        http_push: {{token: "{CAM_TOKEN}"}}
      - id: cam-east-out
        family: plate_barrier
        profile: dahua_itc_http
        lane_direction: out
        zone: 东门
        barrier: barrier-east-out
        http_push: {{token: "{CAM_TOKEN}", allow_from: [127.0.0.1]}}
      - id: barrier-east-out
        family: plate_barrier
        profile: barrier_relay_io
        zone: 东门
        poll_interval: 0.2
        commands: {{open: operator}}
        modbus: {{host: 127.0.0.1, port: {modbus_port}, unit_id: 5, timeout: 0.3}}
rules:
  - id: barrier_open_too_long   # the shipped rule, with a test-sized delay
    kind: state
    family: plate_barrier
    point: barrier_open
    values: [true]
    on_delay: 1.5
    priority: low
    message: {{zh: "{{device}} 道闸常开", en: "Barrier {{device}} stuck open"}}
"""


class Lane:
    def __init__(self, app: App, host: SimulationHost, api: httpx.AsyncClient) -> None:
        self.app, self.host, self.api = app, host, api
        barrier = host.models["barrier-east-out"]
        assert isinstance(barrier, BarrierModel)
        self.barrier = barrier

    async def incidents(self, rule: str) -> list[dict[str, Any]]:
        reply = await self.api.get("/incidents", params={"state": "open"})
        return [i for i in reply.json() if i["rule"] == rule]


@asynccontextmanager
async def lane(tmp_path: Path) -> AsyncIterator[Lane]:
    config = parse_config(site(tmp_path / "gw.db", free_port()), "site.yaml", {})
    async with SimulationHost(config) as host:
        app, stop = App(config), asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        await asyncio.wait_for(app.ready.wait(), 10)
        assert app.push_port is not None
        host.push_to(app.push_port)
        headers = {"Authorization": f"Bearer {OPERATOR}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}", headers=headers) as api:
            try:
                yield Lane(app, host, api)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)


async def until(predicate: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_pushed_reads_are_decided_by_the_registry(tmp_path: Path) -> None:
    async with lane(tmp_path) as s:
        entry = s.host.cameras["cam-east-in"]
        opened, hold = (
            {"Response_AlarmInfoPlate": {"info": "ok"}},
            {"Response_AlarmInfoPlate": {"info": "no"}},
        )
        assert await entry.read("粤B·12345") == (200, opened)  # resident
        assert await entry.read("粤A88888") == (200, opened)  # visitor with a valid pass
        assert await entry.read("沪C00001") == (200, hold)  # unknown entering: the guard decides
        assert await entry.read("粤B66666") == (200, hold)  # blacklisted
        await until(lambda: s.app.pipeline.items >= 4, 5, "four reads committed")
        [banned] = await s.incidents("plate_blacklisted")
        assert banned["device"] == "cam-east-in" and banned["priority"] == "high"
        assert "粤B66666" in banned["title"]
        assert s.app.push is not None and s.app.push.replied_before_commit == 0
        stats = s.app.stats.for_device("sunshine", "cam-east-in")
        assert stats.events == 4 and not stats.errors


async def test_resends_are_answered_once_and_offline_records_never_open(tmp_path: Path) -> None:
    async with lane(tmp_path) as s:
        camera = s.host.cameras["cam-east-in"]
        document = camera.payload("粤B12345", record=777)
        first = await camera.post(document)
        again = await camera.post(document)  # the camera did not see our reply: same record, same answer
        assert first == again == (200, {"Response_AlarmInfoPlate": {"info": "ok"}})
        late = await camera.read("粤B12345", offline=True)  # kept through an outage: the car is gone
        assert late == (200, {"Response_AlarmInfoPlate": {"info": "no"}})
        stats = s.app.stats.for_device("sunshine", "cam-east-in")
        assert stats.events == 2 and stats.errors["duplicate"] == 1
        await until(lambda: s.app.pipeline.items >= 2, 5, "two reads committed")
        assert s.barrier.pulses == 0  # this lane opens by the camera's reply, not by our relay


async def test_bad_pushes_are_refused_counted_and_harmless(tmp_path: Path) -> None:
    async with lane(tmp_path) as s:
        camera = s.host.cameras["cam-east-in"]
        assert (await camera.post(camera.payload("粤B12345"), token="wrong-token-0123456789"))[0] == 401
        assert (await camera.post(camera.payload("粤B12345"), token=""))[0] == 401
        status, body = await camera.post(b"{broken")
        assert status == 400 and body["error"] == "bad_json"
        status, body = await camera.post({"AlarmInfoPlate": {}})
        assert status == 400 and body["error"] == "missing_field"
        async with httpx.AsyncClient() as client:
            unknown = await client.post(camera.url.replace("cam-east-in", "cam-nowhere"), json={})
            assert unknown.status_code == 404
            basic = await client.post(camera.url, json=camera.payload("粤B12345"), auth=("cam", CAM_TOKEN))
            assert basic.status_code == 200  # HTTP Basic with the token as password is accepted too
        stats = s.app.stats.for_device("sunshine", "cam-east-in")
        assert stats.errors == {"unauthorized": 2, "bad_json": 1, "missing_field": 1}
        assert stats.events == 1
        assert s.app.push is not None and s.app.push.rejected_auth == 2


async def test_exit_lane_opens_the_relay_and_holds_unknown_exits(tmp_path: Path) -> None:
    async with lane(tmp_path) as s:
        exit_cam = s.host.cameras["cam-east-out"]
        assert await exit_cam.read("粤B12345") == (200, {"Result": True})  # resident leaves
        await until(lambda: s.barrier.pulses == 1, 5, "the relay pulsed once")
        await until(lambda: s.app.opener.opened == 1, 8, "the open confirmed by the up limit")
        trail = [e for e in (await s.app.store.list_audit(None, 10)) if e.actor == "anpr:cam-east-out"]
        assert [(e.action, e.target, e.outcome) for e in trail] == [
            ("command:open", "barrier-east-out", "ok")
        ]
        assert trail[0].detail["plate"] == "粤B12345"
        assert await exit_cam.read("沪C00001") == (200, {"Result": True})  # Dahua is always acked ...
        await until(lambda: s.app.pipeline.items > 0 and s.barrier.pulses == 1, 2, "no second pulse")
        # ... but the unknown car may not leave: the shipped rule raises it
        for _ in range(100):
            if await s.incidents("plate_unknown_exit"):
                break
            await asyncio.sleep(0.05)
        [held] = await s.incidents("plate_unknown_exit")
        assert held["device"] == "cam-east-out" and "沪C00001" in held["title"]
        assert s.barrier.pulses == 1


async def test_barrier_command_round_trip_and_stuck_arm(tmp_path: Path) -> None:
    async with lane(tmp_path) as s:
        path = "/devices/sunshine/barrier-east-out/commands"
        body = {"command": "open", "reason": "访客忘带卡 visitor without a card"}
        refused = await s.api.post(path, json=body, headers={"Authorization": f"Bearer {VIEWER}"})
        assert refused.status_code == 403
        reply = await s.api.post(path, json=body)
        assert reply.status_code == 200 and reply.json()["outcome"] == "ok", reply.text
        assert "barrier_open = True" in reply.json()["detail"]
        assert s.barrier.pulses == 1 and s.barrier.bits("coil", 0, 1) == [False]  # relay released
        s.barrier.stuck_open = True  # the arm is up from that pulse and never comes down
        for _ in range(100):
            if await s.incidents("barrier_open_too_long"):
                break
            await asyncio.sleep(0.05)
        [stuck] = await s.incidents("barrier_open_too_long")
        assert stuck["device"] == "barrier-east-out"


async def test_visitor_passes_from_the_gatehouse_survive_a_restart(tmp_path: Path) -> None:
    hold, opened = {"Response_AlarmInfoPlate": {"info": "no"}}, {"Response_AlarmInfoPlate": {"info": "ok"}}
    async with lane(tmp_path) as s:
        camera = s.host.cameras["cam-east-in"]
        assert await camera.read("京N12345") == (200, hold)
        path = "/estates/sunshine/visitor-passes"
        viewer = {"Authorization": f"Bearer {VIEWER}"}
        r = await s.api.post(path, json={"plate": "京N12345"}, headers=viewer)
        assert r.status_code == 403, r.text
        assert (
            await s.api.post("/estates/maple/visitor-passes", json={"plate": "京N12345"})
        ).status_code == 404
        assert (await s.api.post(path, json={"plate": "无牌"})).status_code == 422
        created = await s.api.post(
            path, json={"plate": "京n·12345", "label": "访客 王先生 → 5-201", "hours": 2}
        )
        assert created.status_code == 201, created.text
        registered = created.json()
        assert registered["plate"] == "京N12345" and registered["category"] == "visitor"
        assert registered["valid_until"] - registered["valid_from"] == pytest.approx(7200 + 60)
        assert await camera.read("京N12345") == (200, opened)
        check = await s.api.get(
            "/estates/sunshine/plate-check", params={"plate": "京N12345", "direction": "out"}
        )
        assert check.json()["open"] is True and check.json()["category"] == "visitor"
    async with lane(tmp_path) as s:  # a restart: the pass is in the store
        camera = s.host.cameras["cam-east-in"]
        assert await camera.read("京N12345") == (200, opened)
        vehicles = (await s.api.get("/estates/sunshine/vehicles")).json()
        [visit] = [v for v in vehicles if v["pass_id"] is not None]
        gone = await s.api.delete(f"/estates/sunshine/visitor-passes/{visit['pass_id']}")
        assert gone.status_code == 204
        assert (await s.api.delete(f"/estates/sunshine/visitor-passes/{visit['pass_id']}")).status_code == 404
        assert await camera.read("京N12345") == (200, hold)
        trail = [
            (e.action, e.target) for e in await s.app.store.list_audit(None, 10) if e.actor == "control-room"
        ]
        assert ("visitor_pass:cancel", "京N12345") in trail
    async with lane(tmp_path) as s:  # and the cancellation too
        assert await s.host.cameras["cam-east-in"].read("京N12345") == (200, hold)


async def test_a_scenario_keeps_playing_when_the_gateway_is_not_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(site(tmp_path / "gw.db", free_port()), "site.yaml", {})
    steps = [
        {"at": 0, "device": "cam-east-in", "do": "plate", "args": {"plate": "粤B12345"}},
        {"at": 0.1, "device": "barrier-east-out", "do": "set", "args": {"stuck_open": True}},
    ]
    scenario = Scenario.model_validate({"name": "t", "steps": steps})
    async with SimulationHost(config) as host:
        host.push_to(free_port())  # nothing listens there (commissioning practice without a gateway)
        await play(scenario, host)
        barrier = host.models["barrier-east-out"]
        assert isinstance(barrier, BarrierModel) and barrier.stuck_open  # the next step still ran
    assert "cam-east-in (plate) failed" in caplog.text
