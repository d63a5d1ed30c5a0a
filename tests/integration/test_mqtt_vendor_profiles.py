"""Each vendor MQTT profile against its simulator over a real Mosquitto: what the ingress decodes equals
what the simulated device was told happened. uhppoted-mqtt (two controllers on one topic, every record
on the feed and the live topic), Hikvision ISAPI access events, Frigate LPR (cameras on one topic)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest

from drivers.mqtt_device import MqttJsonDecoder
from drivers.profiles import MqttProfile, ProfileLibrary
from drivers.sim import MqttDeviceSimulator
from drivers.sim.vendor_payloads import Style
from drivers.stats import DeviceStats
from drivers.transports.mqtt import BrokerSettings, MqttIngress, Route
from gateway.model import DeviceEvent, Envelope, Item, Reading, SystemClock
from gateway.runtime.broker import MosquittoProcess

pytestmark = pytest.mark.integration


def _profile(name: str) -> MqttProfile:
    profile = ProfileLibrary().get(name)
    assert isinstance(profile, MqttProfile)
    return profile


class Rig:
    """A real MqttIngress on the session broker, recording what it emits (and acking it)."""

    def __init__(
        self, broker: MosquittoProcess, profile: str, devices: Mapping[str, Mapping[str, Any]]
    ) -> None:
        self.items: list[Item] = []
        self.routes: dict[str, Route] = {}
        for device, mqtt in devices.items():
            stats = DeviceStats()
            decoder = MqttJsonDecoder("e1", device, _profile(profile), stats)
            self.routes[device] = Route(mqtt["topic"], decoder, stats, mqtt.get("match"))
        settings = BrokerSettings("127.0.0.1", broker.port, f"eg-test-{uuid.uuid4().hex[:8]}")
        self.ingress = MqttIngress(settings, list(self.routes.values()), SystemClock())

    async def _emit(self, envelope: Envelope) -> None:
        assert envelope.items, "no empty envelopes"
        self.items.extend(envelope.items)
        if envelope.ack:
            envelope.ack()

    def events(self, device: str | None = None) -> list[DeviceEvent]:
        return [i for i in self.items if isinstance(i, DeviceEvent) and device in (None, i.device)]

    def stats(self, device: str) -> DeviceStats:
        return self.routes[device].stats

    async def until(self, predicate: Callable[[], bool], what: str, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)


@asynccontextmanager
async def rig(
    broker: MosquittoProcess, profile: str, devices: Mapping[str, Mapping[str, Any]]
) -> AsyncIterator[Rig]:
    r = Rig(broker, profile, devices)
    task = asyncio.create_task(r.ingress.run(r._emit))
    try:
        await r.until(lambda: r.ingress.connected, "ingress connected")
        await asyncio.sleep(0.3)  # the subscription settles (no SUBACK signal from the ingress)
        yield r
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def sim(
    broker: MosquittoProcess, base: str, style: Style, fields: Mapping[str, object] | None = None
) -> MqttDeviceSimulator:
    return MqttDeviceSimulator("127.0.0.1", broker.port, base, 60.0, style, fields)


def _subset(attributes: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    return {key: attributes.get(key) for key in truth}


# -- uhppoted-mqtt --------------------------------------------------------------------------------
UHPPOTED_TRUTH: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("card_granted", {"card": 8165538, "door": 3, "direction": "in"},
     {"card": 8165538, "reader": 3, "door": 3, "direction": "in"}),
    ("card_denied", {"card": 1234567, "door": 1, "direction": "out", "reason": "out_of_schedule"},
     {"card": 1234567, "reader": 1, "direction": "out", "reason": "out_of_schedule"}),
    ("card_denied", {"card": 1234567, "door": 1, "reason": "anti_passback"}, {"reason": "anti_passback"}),
    ("door_forced", {"door": 2}, {"door": 2}),
    ("door_held", {"door": 2}, {"door": 2}),
    ("exit_button", {"door": 4, "direction": "out"}, {"door": 4, "direction": "out"}),
    ("duress", {"card": 42, "door": 1}, {"card": 42}),
    ("fire_button", {"door": 1}, {"door": 1}),
    ("tamper", {"door": 1}, {"door": 1}),
    ("panic", {"door": 1}, {"door": 1}),
]  # fmt: skip
UHPPOTED_TOPIC = "uhppoted/gateway/events/#"


async def test_uhppoted_events_equal_ground_truth_and_live_copies_are_dropped(
    broker: MosquittoProcess,
) -> None:
    devices = {
        "ctl-a": {"topic": UHPPOTED_TOPIC, "match": {"message.event.device-id": 405419896}},
        "ctl-b": {"topic": UHPPOTED_TOPIC, "match": {"message.event.device-id": 303986753}},
    }
    async with (
        rig(broker, "uhppoted_mqtt", devices) as r,
        sim(broker, "uhppoted/gateway/events", "uhppoted", devices["ctl-a"]["match"]) as a,
        sim(broker, "uhppoted/gateway/events", "uhppoted", devices["ctl-b"]["match"]) as b,
    ):
        sent = []
        for kind, attributes, _ in UHPPOTED_TRUTH:
            payload = await a.event(kind, **attributes)
            sent.append(payload["message"]["event"]["event-id"])
        await a.event("door_opened", door=1)  # a normal door event: known, no event for the gateway
        other = await b.event("door_forced", door=1)
        await r.until(lambda: len(r.events()) == len(UHPPOTED_TRUTH) + 1, "every event once")
        await r.until(lambda: r.stats("ctl-a").errors["duplicate"] == len(UHPPOTED_TRUTH) + 1, "live copies")

        got = r.events("ctl-a")
        assert [e.kind for e in got] == [kind for kind, _, _ in UHPPOTED_TRUTH]
        for event, (kind, _, truth), record in zip(got, UHPPOTED_TRUTH, sent, strict=True):
            assert _subset(event.attributes, truth) == truth, kind
            assert event.attributes["controller"] == 405419896 and event.attributes["event_id"] == record
        assert r.stats("ctl-a").ignored == 1 and r.stats("ctl-a").events == len(UHPPOTED_TRUTH)
        [forced] = r.events("ctl-b")
        assert forced.kind == "door_forced"
        assert forced.attributes["event_id"] == other["message"]["event"]["event-id"]
        await r.until(lambda: r.stats("ctl-b").errors == {"duplicate": 1}, "ctl-b's live copy")
        assert r.ingress.unrouted == 0


# -- Hikvision ------------------------------------------------------------------------------------
HIKVISION_TRUTH: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("card_granted", {"card": "0012345678", "method": "card", "reader": 1},
     {"card": "0012345678", "method": "card", "reader": 1, "direction": "in", "door": 1}),
    ("card_granted", {"method": "face", "employee": "1001", "direction": "out"},
     {"method": "face", "employee": "1001", "reader": 2, "direction": "out"}),
    ("card_granted", {"card": "77", "method": "fingerprint"}, {"method": "fingerprint"}),
    ("card_denied", {"card": "99", "reason": "no_permission"}, {"card": "99", "reason": "no_permission"}),
    ("card_denied", {"card": "99", "reason": "expired"}, {"reason": "expired"}),
    ("card_denied", {"card": "99", "reason": "unknown_card"}, {"reason": "unknown_card"}),
    ("card_denied", {"reason": "face_failed"}, {"reason": "face_failed"}),
    ("card_denied", {"reason": "out_of_schedule", "door": 2}, {"reason": "out_of_schedule", "door": 2}),
    ("door_forced", {"door": 1}, {"door": 1}),
    ("door_held", {"door": 1}, {"door": 1}),
    ("tailgating", {"door": 1}, {"door": 1}),
    ("exit_button", {"door": 1}, {"door": 1}),
    ("tamper", {"reason": "reader_tamper"}, {"reason": "reader_tamper"}),
    ("tamper", {}, {"reason": "controller_tamper"}),
    ("duress", {"card": "5"}, {"card": "5"}),
    ("fire_button", {}, {}),
    ("panic", {}, {}),
]  # fmt: skip


async def test_hikvision_codes_equal_ground_truth_and_a_resent_serial_is_dropped(
    broker: MosquittoProcess,
) -> None:
    devices = {"hik-1": {"topic": "estate/e1/access_gate/hik-1/+"}}
    async with (
        rig(broker, "hikvision_access_mqtt", devices) as r,
        sim(broker, "estate/e1/access_gate/hik-1", "hikvision") as hik,
    ):
        sent = [await hik.event(kind, **attributes) for kind, attributes, _ in HIKVISION_TRUTH]
        await hik.event("door_opened", door=1)  # DOOR_OPEN_NORMAL: no event
        await hik.publish("event", sent[0])  # the device re-sends a stored event after an outage
        await hik.publish("event", {"eventType": "videoloss", "eventState": "inactive"})  # keep-alive
        await hik.publish("heartbeat", {"ts": time.time()})
        await r.until(lambda: any(isinstance(i, Reading) for i in r.items), "the bridge's heartbeat")
        await r.until(lambda: len(r.events()) >= len(HIKVISION_TRUTH), "every event")

        got = r.events()
        assert [e.kind for e in got] == [kind for kind, _, _ in HIKVISION_TRUTH]
        for event, (kind, _, truth), payload in zip(got, HIKVISION_TRUTH, sent, strict=True):
            assert _subset(event.attributes, truth) == truth, (kind, event.attributes)
            controller_event = payload["AccessControllerEvent"]
            assert event.attributes["serial"] == controller_event["serialNo"]
            device_time = datetime.fromisoformat(payload["dateTime"])
            assert device_time.utcoffset() is not None  # the device's own clock, with its zone
            assert event.ts_ns == int(device_time.timestamp()) * 10**9
        assert "reason" not in got[0].attributes  # a granted card has no denial reason
        stats = r.stats("hik-1")
        await r.until(lambda: stats.errors == {"duplicate": 1} and stats.ignored == 2, "dup and ignored")
        assert len(r.events()) == len(HIKVISION_TRUTH)  # door opened, videoloss: ignored


# -- Frigate --------------------------------------------------------------------------------------
FRIGATE_TOPIC = "frigate/tracked_object_update"


async def test_frigate_plates_route_by_camera_faces_are_ignored_strangers_unrouted(
    broker: MosquittoProcess,
) -> None:
    devices = {
        "cam-in": {"topic": FRIGATE_TOPIC, "match": {"camera": "gate_in"}},
        "cam-out": {"topic": FRIGATE_TOPIC, "match": {"camera": "gate_out"}},
    }
    async with (
        rig(broker, "frigate_lpr", devices) as r,
        sim(broker, FRIGATE_TOPIC, "frigate", {"camera": "gate_in"}) as cam_in,
        sim(broker, FRIGATE_TOPIC, "frigate", {"camera": "gate_out"}) as cam_out,
        sim(broker, FRIGATE_TOPIC, "frigate", {"camera": "garage"}) as stranger,
    ):
        inbound = await cam_in.event("plate_read", plate="粤B12345", confidence=96, known_name="Li's car")
        await cam_in.event("face", known_name="Ana", confidence=97)  # the same camera's face update
        outbound = await cam_out.event("plate_read", plate="沪A00001", confidence=88)
        await stranger.event("plate_read", plate="京C99999")  # a camera the site did not configure
        await cam_in.publish("", {"type": "description", "id": "x", "description": "a red car"})  # no camera
        await r.until(lambda: len(r.events()) == 2 and r.ingress.unrouted == 2, "two plates, two unrouted")

        [plate_in], [plate_out] = r.events("cam-in"), r.events("cam-out")
        assert (plate_in.kind, plate_out.kind) == ("plate_read", "plate_read")
        assert plate_in.attributes == {
            "plate": "粤B12345", "confidence": 96.0, "camera": "gate_in", "known_name": "Li's car",
            "object_id": inbound["id"],
        }  # fmt: skip
        assert plate_out.attributes["plate"] == "沪A00001" and plate_out.attributes["confidence"] == 88.0
        assert "known_name" not in plate_out.attributes  # Frigate's null name is left out
        assert plate_in.ts_ns == pytest.approx(inbound["timestamp"] * 1e9, abs=1e3)
        assert plate_out.ts_ns == pytest.approx(outbound["timestamp"] * 1e9, abs=1e3)
        await r.until(lambda: r.stats("cam-in").ignored == 1, "the face update ignored")
        assert r.stats("cam-in").events == 1
        assert r.stats("cam-out").events == 1 and not r.stats("cam-out").errors
