"""The live feed over a real WebSocket: a real gateway (broker, simulators, uvicorn) and the `websockets`
client. Alarms arrive as incident items; a reconnect with since/epoch gets exactly what it missed; an
estate-scoped token never sees another estate; publish → receive latency is measured and printed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.incidents import DeviceStateTracker, LiveItem
from gateway.incidents.live import IncidentUpdate
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess
from tests.integration.stack import TOKENS, Stack, estate_stack

pytestmark = pytest.mark.integration


def wire_device_state(app: App) -> DeviceStateTracker:
    """What the runtime is to do (see the report): the device-state observer on the pipeline."""
    tracker = DeviceStateTracker(
        app.service.live, [d.info for d in app.devices], app.engine.online, app.clock
    )
    app.pipeline.observers.append(tracker)
    return tracker


@asynccontextmanager
async def feed(
    s: Stack, role: str | None = "operator", since: int | None = None, epoch: str | None = None, **kw: Any
) -> AsyncIterator[ClientConnection]:
    assert s.app is not None
    query = f"?since={since}&epoch={epoch}" if since is not None else ""
    headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
    url = f"ws://127.0.0.1:{s.app.api_port}/feed/ws{query}"
    async with connect(url, additional_headers=headers, open_timeout=5, **kw) as ws:
        yield ws


async def receive(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), within))
    assert isinstance(message, dict)
    return message


async def until_incident(
    ws: ClientConnection, within: float, log: list[dict[str, Any]] | None = None, **match: Any
) -> tuple[dict[str, Any], list[int]]:
    """Read until an incident item matching `match` (fields of its incident); also every seq read."""
    deadline, seen = time.monotonic() + within, []
    while True:
        message = await receive(ws, max(0.01, deadline - time.monotonic()))
        if log is not None:
            log.append(message)
        if "seq" in message and message["type"] in ("incident", "device"):
            seen.append(message["seq"])
        if message["type"] == "incident" and all(message["incident"][k] == v for k, v in match.items()):
            return message, seen


async def test_an_alarm_arrives_and_a_reconnect_gets_exactly_what_it_missed(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        assert s.app is not None
        wire_device_state(s.app)
        live = s.app.service.live
        gate = s.host.mqtt_devices["gate-north"]
        async with feed(s) as ws:
            hello = await receive(ws)
            assert hello["type"] == "hello" and hello["epoch"] == live.epoch
            assert await receive(ws) == {"type": "resync", "epoch": live.epoch, "seq": hello["seq"]}
            await gate.event("door_forced", reader=1)
            opened, seen = await until_incident(ws, 5, rule="gate_door_forced", state="open")
            assert opened["new"] is True and opened["incident"]["estate"] == "sunshine"
            assert opened["entries"][0]["action"] == "opened"
            assert seen == sorted(set(seen))  # in order, no repeats
            last = seen[-1]
        incident_id = opened["incident"]["id"]

        # Disconnected: more changes happen (operator actions, the alarm again, device values).
        await s.api("POST", f"/incidents/{incident_id}/ack")
        await s.api("POST", f"/incidents/{incident_id}/comment", json={"text": "保安已到现场"})
        await s.api("POST", f"/incidents/{incident_id}/assign", json={"assignee": "li.wei"})
        await gate.event("door_forced", reader=1)
        timeline = s.app.service.manager.by_id[incident_id].timeline
        await s.until(lambda: any(e.action == "alarm_reactivated" for e in timeline), 5, "the alarm again")

        def reactivation_published() -> bool:  # committed and on the feed, not only decided in memory
            items = live.replay(last, live.epoch) or []
            return any(
                isinstance(i.body, IncidentUpdate)
                and any(e.action == "alarm_reactivated" for e in i.body.entries)
                for i in items
            )

        await s.until(reactivation_published, 5, "the alarm again on the feed")

        async with feed(s, since=last, epoch=live.epoch) as ws:
            hello = await receive(ws)
            replayed = [await receive(ws) for _ in range(hello["seq"] - last)]  # operator sees every estate
            assert [m["seq"] for m in replayed] == list(range(last + 1, hello["seq"] + 1))
            actions = [e["action"] for m in replayed if m["type"] == "incident" for e in m["entries"]]
            operator = [a for a in actions if a in ("acknowledged", "commented", "assigned")]
            assert operator == ["acknowledged", "commented", "assigned"]
            assert "alarm_reactivated" in actions
            # ... then live, with no gap and no repeat after the replay
            await s.api("POST", f"/incidents/{incident_id}/comment", json={"text": "已复位"})
            message, seen = await until_incident(ws, 5, id=incident_id)
            assert message["entries"][-1]["detail"] == {"text": "已复位"}
            assert seen == list(range(hello["seq"] + 1, seen[-1] + 1))

        async with feed(s, since=last, epoch="another-process") as ws:  # a restarted gateway
            hello = await receive(ws)
            assert await receive(ws) == {"type": "resync", "epoch": live.epoch, "seq": hello["seq"]}


async def test_an_estate_scoped_token_never_receives_another_estate(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        assert s.app is not None
        wire_device_state(s.app)
        async with feed(s, role="other-operator") as maple_ws, feed(s, role="viewer") as all_ws:
            for ws in (maple_ws, all_ws):
                assert (await receive(ws))["type"] == "hello"
                assert (await receive(ws))["type"] == "resync"
            maple_log: list[dict[str, Any]] = []
            all_log: list[dict[str, Any]] = []
            await s.host.mqtt_devices["gate-north"].event("door_forced", reader=1)  # sunshine
            await until_incident(all_ws, 5, all_log, estate="sunshine")
            await s.host.mqtt_devices["gate-b"].event("door_forced", reader=1)  # maple
            await until_incident(maple_ws, 5, maple_log, estate="maple")
            await until_incident(all_ws, 5, all_log, estate="maple")
            await asyncio.sleep(1.5)  # device values of sunshine (gen-1 polls every 0.5 s) keep coming
            for ws, log in ((maple_ws, maple_log), (all_ws, all_log)):
                with contextlib.suppress(TimeoutError):
                    for _ in range(1000):
                        log.append(await receive(ws, 0.2))
            estates = {m.get("estate") or m.get("incident", {}).get("estate") for m in maple_log}
            assert estates == {"maple"}
            assert any(m["type"] == "device" and m["device"] == "gate-b" for m in maple_log)
            snapshot = (await s.api("GET", "/feed/devices", role="other-operator")).json()
            assert snapshot["epoch"] == s.app.service.live.epoch and snapshot["seq"] >= maple_log[-1]["seq"]
            assert [(d["estate"], d["device"]) for d in snapshot["devices"]] == [("maple", "gate-b")]
            everything = (await s.api("GET", "/feed/devices", role="viewer")).json()["devices"]
            assert {d["device"] for d in everything} >= {"gen-1", "gate-north", "gate-b"}
            gen = [m for m in all_log if m["type"] == "device" and m["device"] == "gen-1"]
            assert gen and gen[-1]["online"] is True and gen[-1]["values"]
            assert gen[-1].keys() == {
                "type",
                "seq",
                "estate",
                "device",
                "online",
                "alarms",
                "priority",
                "values",
                "ts",
            }
            sunshine = [
                i
                for i in s.app.service.live.replay(0, s.app.service.live.epoch) or []
                if i.estate == "sunshine"
            ]
            assert len(sunshine) > 3  # there was plenty to leak
            # Resume is scoped too: the replay from 0 holds maple's items only.
        live = s.app.service.live
        async with feed(s, role="other-operator", since=0, epoch=live.epoch) as ws:
            hello = await receive(ws)
            maple = [
                i.seq
                for i in live.replay(0, live.epoch) or []
                if i.estate == "maple" and i.seq <= hello["seq"]
            ]
            replayed = [await receive(ws) for _ in maple]
            assert [m["seq"] for m in replayed] == maple
            with contextlib.suppress(TimeoutError):
                assert (await receive(ws, 0.3))["seq"] > hello["seq"]


async def test_unauthenticated_and_cross_origin_are_closed(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        for role, kw in ((None, {}), ("operator", {"origin": "http://evil.example"})):
            async with feed(s, role=role, **kw) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await receive(ws)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == (4401 if role is None else 4403)
        assert s.app is not None
        async with feed(s, origin=f"http://127.0.0.1:{s.app.api_port}") as ws:  # the console's own page
            assert (await receive(ws))["type"] == "hello"
            stopping = time.monotonic()
            await s.stop_gateway()  # a connected client does not hold up the shutdown
            assert time.monotonic() - stopping < 4
            with pytest.raises(ConnectionClosed):
                for _ in range(10):
                    await receive(ws, 2)


async def test_publish_to_receive_latency_over_100_incident_changes(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        assert s.app is not None
        service, live = s.app.service, s.app.service.live
        published: dict[int, float] = {}

        def stamp(changes: list[Any]) -> None:  # listeners run right after the feed published the batch
            now = time.monotonic()
            for seq in range(live.seq - len(changes) + 1, live.seq + 1):
                published[seq] = now

        service.listeners.append(stamp)
        async with feed(s, role="viewer") as ws:
            await receive(ws)
            await receive(ws)
            await s.host.mqtt_devices["gate-north"].event("door_forced", reader=1)
            opened, _ = await until_incident(ws, 5, rule="gate_door_forced")
            latencies: list[float] = []

            async def reader() -> None:
                while len(latencies) < 100:
                    message = await receive(ws, 10)
                    if message["type"] == "incident" and message["seq"] in published:
                        latencies.append(time.monotonic() - published[message["seq"]])

            reading = asyncio.create_task(reader())
            for n in range(100):  # operators commenting; every commit is published like an alarm's
                r = await s.api(
                    "POST", f"/incidents/{opened['incident']['id']}/comment", json={"text": f"#{n}"}
                )
                assert r.status_code == 200
            await asyncio.wait_for(reading, 15)
        ms = sorted(x * 1000 for x in latencies)
        p50, p99 = statistics.median(ms), ms[98]
        figures = f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        print(f"\nlive feed publish→WebSocket receive over {len(ms)} incident changes: {figures}")
        assert p99 < 500
        assert isinstance(live.replay(0, live.epoch), list)
        assert all(isinstance(i, LiveItem) for i in live.replay(0, live.epoch) or [])
