"""End to end on real parts: simulated devices → MQTT / Modbus TCP → gateway → incidents → HTTP API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.mqtt_device import MqttJsonDecoder
from drivers.sim import DeviceFault, GeneratorModel, MqttDeviceSimulator
from drivers.sim.points import PointsModel
from gateway.runtime.broker import MosquittoProcess
from tests.integration.stack import estate_stack

pytestmark = pytest.mark.integration

FAST_FAIL_TO_START = """\
rules:
  - id: gen_fail_to_start
    kind: state
    family: generator
    point: mains_failed
    values: [true]
    when: {point: engine_state, not_in: [running]}
    on_delay: 1
    priority: critical
    message: {zh: "市电失电，发电机 {device} 未启动", en: "Mains failed and generator {device} did not start"}
"""


async def test_low_oil_opens_one_high_incident(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        gen.set_mains(False)  # auto start: the engine runs after the crank
        await s.until(lambda: gen.engine == "running" or (gen.step() and False), 6, "engine running")
        gen.oil_pressure_running = 120  # low for the gateway (150), above the controller's shutdown (100)
        await s.until(lambda: s.opened("gen_low_oil_pressure"), 6, "low-oil incident")
        await asyncio.sleep(1.5)  # more polls of the same condition must not open more incidents
        incidents = (await s.api("GET", "/incidents", params={"estate": "sunshine"})).json()
        assert [(i["rule"], i["priority"], i["state"]) for i in incidents] == [
            ("gen_low_oil_pressure", "high", "open")
        ]
        detail = (await s.api("GET", f"/incidents/{incidents[0]['id']}")).json()
        assert detail["alarm_state"] == "unack_active"
        assert detail["timeline"][0]["detail"]["value"] == 120


async def test_mains_failure_with_generator_not_starting(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path, rules=FAST_FAIL_TO_START) as s:
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        gen.fail_to_start = True
        gen.set_mains(False)
        await s.until(lambda: s.opened("gen_fail_to_start"), 5, "fail-to-start incident")
        [item] = s.opened("gen_fail_to_start")
        assert item.change.incident.priority.value == "critical"
        assert "未启动" in item.change.incident.title


async def test_door_forced_over_mqtt_opens_incident_within_a_second(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        gate = s.host.mqtt_devices["gate-north"]
        await gate.event("card_granted", card="8165538")
        sent = time.monotonic()
        await gate.event("door_forced", reader=1)
        await s.until(lambda: s.opened("gate_door_forced"), 1.0, "door-forced incident")
        latency = s.feed[-1][0] - sent
        assert latency < 1.0
        [incident] = (await s.api("GET", "/incidents", params={"priority": "high"})).json()
        assert incident["device"] == "gate-north" and incident["alarm_state"] == "unack_rtn"
        assert len(s.opened()) == 1  # the granted card raised nothing


async def test_device_that_stops_answering_goes_offline_within_three_polls(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    poll = 0.5
    async with estate_stack(broker, tmp_path, poll=poll) as s:
        gen = s.host.models["gen-1"]
        await s.until(lambda: s.app is not None and s.app.engine.online("sunshine", "gen-1"), 3, "gen online")
        gen.fault = DeviceFault(silent=True)
        silenced = time.monotonic()
        await s.until(lambda: s.opened("offline_generator"), 3 * poll + 1, "offline incident")
        assert s.feed[-1][0] - silenced <= 3 * poll
        devices = {d["device"]: d for d in (await s.api("GET", "/devices")).json()}
        assert devices["gen-1"]["online"] is False and devices["gen-1"]["errors"]["timeout"] >= 2

        gen.fault = DeviceFault()
        await s.until(
            lambda: s.app is not None and s.app.engine.online("sunshine", "gen-1"), 5, "back online"
        )
        [offline] = (await s.api("GET", "/incidents", params={"estate": "sunshine"})).json()
        assert offline["rule"] == "offline_generator" and offline["active"] is False
        assert offline["alarm_state"] == "unack_rtn"


MALFORMED: list[bytes] = [
    b"{not json",
    b"[1, 2, 3]",
    b'"a string"',
    b'{"event": "no_such_event"}',
    b'{"event": 42}',
    b'{"no_event_field": true}',
    b'{"event": "door_forced", "ts": "yesterday"}',
    b"\xff\xfe invalid utf-8",
    b'{"event": {"nested": {"deeply": [1, 2, {"x": 1}]}}}',
    b"",
]


async def test_malformed_payloads_and_modbus_exceptions_are_counted_and_harmless(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        assert s.app is not None
        gen = s.host.models["gen-1"]
        gen.fault = DeviceFault(exception=2)  # illegal address on every request
        gate = s.host.mqtt_devices["gate-north"]
        for i in range(1000):
            await gate.publish("event", MALFORMED[i % len(MALFORMED)])
        await gate.publish("state", b"x" * 70_000)  # over the profile's 64 KiB limit
        await gate.publish("state", {"door_open": "maybe"})  # wrong type
        await gate.event("door_forced")  # a good message after all the bad ones
        await s.until(lambda: s.opened("gate_door_forced"), 5, "door-forced incident after garbage")

        errors = (await s.api("GET", "/devices")).json()
        gate_errors = next(d for d in errors if d["device"] == "gate-north")["errors"]
        assert gate_errors == {
            "bad_json": 300,  # "{not json", invalid UTF-8, empty
            "not_object": 200,
            "unknown_kind": 200,
            "missing_field": 100,
            "bad_type": 201,  # ts "yesterday", nested event, door_open "maybe"
            "too_large": 1,
        }
        gen_errors = next(d for d in errors if d["device"] == "gen-1")["errors"]
        assert gen_errors.get("exception_2", 0) > 0

        gen.fault = DeviceFault()
        polls = s.app.stats.for_device("sunshine", "gen-1").polls
        await s.until(
            lambda: s.app is not None and s.app.stats.for_device("sunshine", "gen-1").polls > polls + 1,
            3,
            "generator polls continue",
        )
        health = (await s.http.get("/health")).json() if s.http else {}
        assert health["status"] == "ok" and health["mqtt_connected"] is True
        assert {"alarms_in_flood", "chattering_alarms", "alarms_correlated"} <= set(health)
        assert not s.opened("offline_generator")  # exception replies mean the device is alive


async def test_ack_through_the_api_with_roles_and_estate_scope(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        await s.host.mqtt_devices["gate-north"].event("door_forced")
        await s.until(lambda: s.opened("gate_door_forced"), 2, "incident")
        incident_id = s.opened()[0].change.incident.id

        assert (await s.api("GET", "/incidents", role="")).status_code == 401
        bad = (
            await s.http.get("/incidents", headers={"Authorization": "Bearer wrong-token-000000"})
            if s.http
            else None
        )
        assert bad is not None and bad.status_code == 401
        assert (await s.api("POST", f"/incidents/{incident_id}/ack", role="viewer")).status_code == 403
        assert (await s.api("GET", f"/incidents/{incident_id}", role="other-operator")).status_code == 404
        assert (
            await s.api("POST", f"/incidents/{incident_id}/ack", role="other-operator")
        ).status_code == 404
        assert (await s.api("GET", "/incidents", role="other-operator")).json() == []
        assert (await s.api("GET", "/devices", role="other-operator")).json()[0]["estate"] == "maple"

        acked = await s.api("POST", f"/incidents/{incident_id}/ack", json={"note": "guard on the way"})
        assert acked.status_code == 200
        body = acked.json()
        assert body["state"] == "acknowledged" and body["acknowledged_by"] == "control-room"
        assert body["alarm_state"] == "normal"
        ack_entry = [e for e in body["timeline"] if e["action"] == "acknowledged"]
        assert ack_entry[0]["actor"] == "control-room"
        assert ack_entry[0]["detail"] == {"source": "127.0.0.1", "note": "guard on the way"}
        listed = (await s.api("GET", "/incidents", params={"state": "acknowledged"}, role="viewer")).json()
        assert [i["id"] for i in listed] == [incident_id]
        health = await s.http.get("/health") if s.http else None
        assert health is not None and health.status_code == 200  # the one route without auth


async def test_restart_restores_active_alarms_without_duplicates(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    fast_fuel = (
        "rules:\n  - {id: gen_fuel_low, kind: threshold, family: generator, point: fuel_level, op: '<',\n"
    )
    fast_fuel += "     limit: 20, priority: medium, message: {zh: 燃油低, en: fuel low}}\n"
    async with estate_stack(broker, tmp_path, rules=fast_fuel) as s:
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        gen.fuel_level = 15
        await s.until(lambda: s.opened("gen_fuel_low"), 3, "fuel-low incident")
        await s.stop_gateway()
        s.feed.clear()
        app = await s.start_gateway()
        assert "sunshine/gen-1/gen_fuel_low" in app.service.manager.active_keys()
        await asyncio.sleep(1.5)  # several polls of the same low fuel
        assert s.opened() == []
        assert len((await s.api("GET", "/incidents")).json()) == 1
        gen.fuel_level = 60
        await s.until(
            lambda: any(
                i.change.incident.rule == "gen_fuel_low" and not i.change.incident.active for _, i in s.feed
            ),
            3,
            "return to normal after restart",
        )


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_events_published_while_the_gateway_is_down_are_not_lost(
    broker: MosquittoProcess, tmp_path: Path, protocol: str
) -> None:
    async with estate_stack(broker, tmp_path, mqtt=f", protocol: '{protocol}'") as s:
        await s.stop_gateway()  # the broker keeps the persistent session and queues QoS 1 for it
        async with MqttDeviceSimulator(
            "127.0.0.1", broker.port, "estate/sunshine/access_gate/gate-north"
        ) as gate:
            await gate.event("door_forced")
            await gate.event("tamper")
        await s.start_gateway()
        await s.until(lambda: s.opened("gate_door_forced") and s.opened("gate_tamper"), 5, "queued events")


async def test_backlog_in_the_gateway_stays_bounded(broker: MosquittoProcess, tmp_path: Path) -> None:
    """5,000 messages queued while the gateway is down, then drained: the broker would push them all at
    once (it exceeds its in-flight limits once acks flow), so the gateway must push back itself."""
    async with estate_stack(
        broker, tmp_path, rules="ingest: {queue_size: 50}\n", mqtt=", max_backlog: 100"
    ) as s:
        s.host.mqtt_devices["gate-north"].silent = True  # no heartbeats: count exactly the 5,000
        await s.stop_gateway()
        async with MqttDeviceSimulator(
            "127.0.0.1", broker.port, "estate/sunshine/access_gate/gate-north"
        ) as gate:
            for _ in range(5000):
                await gate.publish("state", {"door_open": False})
        app = await s.start_gateway()
        gate_stats = app.stats.for_device("sunshine", "gate-north")
        peak = 0
        deadline = time.monotonic() + 30
        while gate_stats.readings < 5000 or app.queue.depth:
            assert time.monotonic() < deadline, f"only {gate_stats.readings} of 5000 taken in"
            assert app.mqtt is not None
            peak = max(peak, app.queue.depth + app.mqtt.backlog)
            await asyncio.sleep(0.001)
        assert app.mqtt is not None and app.mqtt.read_gate is not None
        assert app.mqtt.read_gate.pauses > 0
        assert peak <= 50 + 100 + 1
        assert gate_stats.readings == 5000 and sum(gate_stats.errors.values()) == 0


async def test_shelve_and_unshelve_through_the_api(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        await s.host.mqtt_devices["gate-north"].event("door_forced")
        await s.until(lambda: s.opened("gate_door_forced"), 2, "incident")
        incident_id = s.opened()[0].change.incident.id
        body = {"minutes": 30, "reason": "门磁故障，已报修"}
        assert (
            await s.api("POST", f"/incidents/{incident_id}/shelve", role="viewer", json=body)
        ).status_code == 403
        bad = await s.api("POST", f"/incidents/{incident_id}/shelve", json={"minutes": 0, "reason": "x"})
        assert bad.status_code == 422  # shelving always has a positive, bounded expiry
        shelved = (await s.api("POST", f"/incidents/{incident_id}/shelve", json=body)).json()
        assert shelved["alarm_state"] == "shelved" and shelved["shelved_until"] > time.time() + 29 * 60
        assert shelved["timeline"][-1]["detail"]["reason"] == "门磁故障，已报修"
        unshelved = (await s.api("POST", f"/incidents/{incident_id}/unshelve")).json()
        assert unshelved["alarm_state"] == "unack_rtn" and unshelved["shelved_until"] is None
        assert unshelved["timeline"][-1]["actor"] == "control-room"


async def test_denial_burst_at_one_reader_over_mqtt(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        gate = s.host.mqtt_devices["gate-north"]
        for _ in range(4):
            await gate.event("card_denied", reader=1, card="0000001")
        await gate.event("card_denied", reader=2, card="0000002")
        await asyncio.sleep(0.5)
        assert not s.opened("gate_denied_burst")
        await gate.event("card_denied", reader=1, card="0000001")
        await s.until(lambda: s.opened("gate_denied_burst"), 2, "denial-burst incident")
        [item] = s.opened("gate_denied_burst")
        assert item.change.incident.priority.value == "medium"
        assert "reader 1" in item.change.incident.title_en


async def test_resolve_and_close_through_the_api(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        await s.host.mqtt_devices["gate-north"].event("door_forced")
        await s.until(lambda: s.opened("gate_door_forced"), 2, "incident")
        incident_id = s.opened()[0].change.incident.id
        bad = await s.api("POST", f"/incidents/{incident_id}/resolve", json={"cause": "aliens"})
        assert bad.status_code == 422
        done = await s.api(
            "POST", f"/incidents/{incident_id}/resolve", json={"cause": "real", "note": "巡逻已到场"}
        )
        assert (
            done.status_code == 200 and done.json()["state"] == "resolved" and done.json()["cause"] == "real"
        )
        again = await s.api("POST", f"/incidents/{incident_id}/ack")
        assert again.status_code == 409  # nothing to act on once resolved
        assert (await s.api("POST", f"/incidents/{incident_id}/close")).status_code == 403  # operators cannot


async def test_fire_point_over_modbus_is_a_latching_critical_incident(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        panel = s.host.models["fire-1"]
        assert isinstance(panel, PointsModel)
        panel.values["L1-D003.fire"] = True
        await s.until(lambda: s.opened("fire_point_fire"), 3, "fire incident")
        [item] = s.opened("fire_point_fire")
        incident_id = item.change.incident.id
        assert item.change.incident.priority.value == "critical"
        panel.values["L1-D003.fire"] = False  # reset at the panel: the alarm latches until acknowledged
        await s.until(
            lambda: any(i.change.entries[-1].action == "condition_cleared_latched" for _, i in s.feed),
            3,
            "latched",
        )
        before = (await s.api("GET", f"/incidents/{incident_id}")).json()
        assert (
            before["active"] is True and before["latched"] is True and before["alarm_state"] == "unack_active"
        )
        after = (await s.api("POST", f"/incidents/{incident_id}/ack")).json()
        assert after["active"] is False and after["alarm_state"] == "normal"


async def test_septic_level_over_modbus_raises_high_then_high_high(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    fast = """rules:
  - {id: septic_high, kind: threshold, family: septic_pressure, point: pressure, op: '>', limit: 18,
     deadband: 1, priority: medium, message: {zh: 液位高, en: level high}}
  - {id: septic_high_high, kind: threshold, family: septic_pressure, point: pressure, op: '>', limit: 22,
     deadband: 1, priority: high, message: {zh: 液位超高, en: level high-high}}
"""
    async with estate_stack(broker, tmp_path, rules=fast) as s:
        tank = s.host.models["septic-1"]
        assert isinstance(tank, PointsModel)
        tank.values.update({"unit": "kPa", "pressure": 19.5, "temperature": 16.0})
        await s.until(lambda: s.opened("septic_high"), 3, "septic high")
        tank.values["pressure"] = 23.0
        key = "sunshine/septic-1/septic_high_high"  # joins the tank's incident: same zone, within the window
        await s.until(lambda: any(key in item.change.incident.members for _, item in s.feed), 3, "high-high")
        incidents = (await s.api("GET", "/incidents", params={"estate": "sunshine"})).json()
        septic = [i for i in incidents if i["device"] == "septic-1"]
        assert len(septic) == 1 and septic[0]["priority"] == "high"  # correlated: same tank, most urgent wins


async def test_blacklisted_plate_over_mqtt(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        camera = s.host.mqtt_devices["barrier-east"]
        await camera.publish("event", {"list": "allowList", "plate": "粤B00001", "confidence": 98})
        await camera.publish(
            "event", {"list": "blockList", "plate": "粤B12345", "confidence": 96, "direction": "in"}
        )
        await s.until(lambda: s.opened("plate_blacklisted"), 2, "blacklisted plate")
        [item] = s.opened("plate_blacklisted")
        assert "粤B12345" in item.change.incident.title and item.change.incident.priority.value == "high"
        assert len(s.opened()) == 1  # the resident's plate raised nothing


async def test_out_of_service_through_the_api(broker: MosquittoProcess, tmp_path: Path) -> None:
    fast_fuel = (
        "rules:\n  - {id: gen_fuel_low, kind: threshold, family: generator, point: fuel_level, op: '<',\n"
    )
    fast_fuel += "     limit: 20, priority: medium, message: {zh: 燃油低, en: fuel low}}\n"
    async with estate_stack(broker, tmp_path, rules=fast_fuel) as s:
        path = "/devices/sunshine/gen-1/out-of-service"
        body = {"reason": "加油及保养 work order 1123", "hours": 2}
        assert (await s.api("POST", path, json=body)).status_code == 403  # operators may not
        other = await s.api("POST", "/devices/maple/gate-b/out-of-service", role="supervisor", json=body)
        assert other.status_code == 404  # outside the supervisor's estates
        taken = (await s.api("POST", path, role="supervisor", json=body)).json()
        assert taken["out_of_service"]["actor"] == "duty-manager" and taken["out_of_service"]["until"]
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        gen.fuel_level = 5  # being refuelled: would alarm, but the device is out of service
        await asyncio.sleep(1.5)
        assert s.opened() == []
        back = (await s.api("POST", "/devices/sunshine/gen-1/in-service", role="supervisor")).json()
        assert back["out_of_service"] is None
        await s.until(lambda: s.opened("gen_fuel_low"), 3, "fuel-low incident once back in service")


async def test_generator_commands_checked_confirmed_and_audited(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        url = "/devices/sunshine/gen-1/commands"

        async def command(name: str, role: str = "supervisor", reason: str = "月度试机 monthly test") -> Any:
            await asyncio.sleep(2.05)  # the rate limit: one command per 2 s per device
            return await s.api("POST", url, role=role, json={"command": name, "reason": reason})

        assert (await s.api("POST", url, json={"command": "manual", "reason": "x"})).status_code == 422
        assert (await command("manual", role="operator")).status_code == 403  # manual needs a supervisor
        manual = (await command("manual")).json()
        assert (
            manual["outcome"] == "ok" and "control_mode = manual" in manual["detail"] and gen.mode == "manual"
        )
        started = (await command("start")).json()
        assert started["outcome"] == "ok" and gen.engine in ("pre_start", "running")
        stopped = (await command("stop")).json()
        assert stopped["outcome"] == "ok" and gen.mode == "stop"
        gen.supported.discard(35703)  # this controller has no test-on-load key
        refused = (await command("test_on_load")).json()
        assert (
            refused["outcome"] == "refused" and "does not support" in refused["detail"] and gen.mode == "stop"
        )
        assert (await command("reset")).status_code == 403  # not allowed by the site config at all
        auto = (await command("auto", role="operator")).json()
        assert auto["outcome"] == "ok" and gen.mode == "auto"
        quick = await s.api("POST", url, json={"command": "auto", "reason": "again at once"})
        assert quick.status_code == 429

        assert (await s.api("GET", "/audit")).status_code == 403  # operators do not read the audit trail
        trail = (await s.api("GET", "/audit", role="supervisor")).json()
        commands = [e for e in reversed(trail) if e["action"].startswith("command:")]  # not the 422 above
        outcomes = [(e["action"], e["outcome"], e["actor"]) for e in commands]
        assert outcomes == [
            ("command:manual", "forbidden", "control-room"),
            ("command:manual", "ok", "duty-manager"),
            ("command:start", "ok", "duty-manager"),
            ("command:stop", "ok", "duty-manager"),
            ("command:test_on_load", "refused", "duty-manager"),
            ("command:reset", "forbidden", "duty-manager"),
            ("command:auto", "ok", "control-room"),
            ("command:auto", "rate_limited", "control-room"),
        ]
        first = commands[0]
        assert first["source"] == "127.0.0.1" and first["detail"]["reason"] == "月度试机 monthly test"


async def test_a_decoder_crash_is_counted_and_does_not_wedge_ingest(
    broker: MosquittoProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with estate_stack(broker, tmp_path) as s:
        original = MqttJsonDecoder.decode

        def buggy(self: MqttJsonDecoder, topic: str, payload: bytes, now_ns: int) -> Any:
            if b"poison" in payload:
                raise KeyError("a decoder bug")
            return original(self, topic, payload, now_ns)

        monkeypatch.setattr(MqttJsonDecoder, "decode", buggy)
        gate = s.host.mqtt_devices["gate-north"]
        await gate.publish("event", {"event": "poison"})  # QoS 1: without the ack it would come back forever
        await gate.event("door_forced")
        await s.until(lambda: s.opened("gate_door_forced"), 3, "incident after the poison message")
        assert (
            s.app is not None
            and s.app.stats.for_device("sunshine", "gate-north").errors["decoder_crash"] == 1
        )
        assert s.app.mqtt is not None and s.app.mqtt.connections == 1  # no crash, no reconnect


async def test_device_detail_shows_where_each_point_is(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with estate_stack(broker, tmp_path) as s:
        reply = await s.api("GET", "/devices/sunshine/fire-1", role="viewer")
        assert reply.status_code == 200
        detail = reply.json()
        assert detail["zone"] == "3号楼"
        points = {p["name"]: p for p in detail["points"]}
        assert points["L1-D001.fire"]["label"] == "3号楼 1层 烟感 大堂"
        assert points["online"]["label"] == detail["location"]  # unlabelled: the device's place
        assert (await s.api("GET", "/devices/sunshine/fire-1", role="other-operator")).status_code == 404
        assert (await s.api("GET", "/devices/sunshine/nowhere")).status_code == 404
