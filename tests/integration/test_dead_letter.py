"""The dead-letter topic over a real Mosquitto: rejected payloads come back as letters (rate-limited,
bounded, base64 when not UTF-8) while valid ones still reach the core; and the App wires it from config."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

import aiomqtt
import orjson
import pytest

from drivers.mqtt_device import MqttJsonDecoder
from drivers.profiles import MqttProfile, ProfileLibrary
from drivers.stats import DeviceStats
from drivers.transports.dead_letter import DeadLetters
from drivers.transports.mqtt import BrokerSettings, MqttIngress, Route
from gateway.config import parse_config
from gateway.model import DeviceEvent, Envelope, Item, SystemClock
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess

pytestmark = pytest.mark.integration
DEAD = "estate-gateway/gw-test/dead-letter"


async def _until(predicate: object, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_rejected_payloads_become_rate_limited_dead_letters(broker: MosquittoProcess) -> None:
    profile = ProfileLibrary().get("generic_access_gate")
    assert isinstance(profile, MqttProfile)
    stats = DeviceStats()
    route = Route("site/gate/+", MqttJsonDecoder("e1", "gate", profile, stats), stats)
    ingress = MqttIngress(
        BrokerSettings("127.0.0.1", broker.port, f"eg-dl-{uuid.uuid4().hex[:8]}"), [route], SystemClock()
    )
    ingress.dead_letters = DeadLetters(DEAD, 5, ingress.send_nowait, SystemClock(), max_bytes=64)
    items: list[Item] = []

    async def emit(envelope: Envelope) -> None:
        items.extend(envelope.items)
        if envelope.ack:
            envelope.ack()

    letters: list[dict[str, object]] = []
    task = asyncio.create_task(ingress.run(emit))
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"dl-reader-{uuid.uuid4().hex[:6]}") as c:
        await c.subscribe(DEAD)

        async def read() -> None:
            async for message in c.messages:
                assert isinstance(message.payload, bytes)
                letters.append(orjson.loads(message.payload))

        reader = asyncio.create_task(read())
        try:
            await _until(lambda: ingress.connected, "ingress connected")
            await asyncio.sleep(0.3)  # the subscription settles
            await c.publish("site/gate/event", b"\xff\xfe not json", qos=1)
            await c.publish("site/gate/event", b'{"event": "' + b"x" * 500 + b'"}', qos=1)
            for i in range(30):  # a burst: at most 5 a second get out
                await c.publish("site/gate/nonsense", f'{{"n": {i}}}'.encode(), qos=1)
            await c.publish("site/gate/event", b'{"event": "card_granted", "card": "1"}', qos=1)
            await _until(lambda: len(items) == 1, "the valid payload processed")
            rejected = sum(stats.errors.values())
            await _until(lambda: ingress.dead_letters.published + ingress.dead_letters.suppressed == rejected,
                         "every rejection offered")  # fmt: skip
            await _until(lambda: len(letters) == ingress.dead_letters.published, "every letter delivered")
        finally:
            reader.cancel()
            task.cancel()
            await asyncio.gather(reader, task, return_exceptions=True)
    assert isinstance(items[0], DeviceEvent) and items[0].kind == "card_granted"
    assert stats.errors == {"bad_json": 1, "unknown_kind": 1, "unknown_channel": 30}
    dl = ingress.dead_letters.stats()
    assert dl["published"] + dl["suppressed"] == 32 and 5 <= dl["published"] <= 15, dl  # ≤ 5 a second
    first, second = letters[0], letters[1]
    assert first["reason"] == "bad_json" and first["topic"] == "site/gate/event"
    assert (first["estate"], first["device"]) == ("e1", "gate")
    assert base64.b64decode(str(first["payload_b64"])) == b"\xff\xfe not json"
    assert second["reason"] == "unknown_kind" and second["truncated"] is True and second["size"] == 513
    assert len(str(second["payload"])) == 64


def test_app_wires_the_dead_letter_topic_from_config() -> None:
    config = parse_config(
        """
gateway_id: gw-test
mqtt: {dead_letter_topic: "estate-gateway/{gateway}/dead-letter", dead_letter_rate: 7}
store: {path: ":memory:"}
estates:
  - id: e1
    name: {zh: 测试, en: Test}
    devices:
      - {id: gate, family: access_gate, profile: generic_access_gate, mqtt: {topic: "site/gate/+"}}
""",
        "site.yaml",
        {},
    )
    app = App(config)
    app._driver_tasks()
    assert app.mqtt is not None and app.mqtt.dead_letters is not None
    assert (app.mqtt.dead_letters.topic, app.mqtt.dead_letters.rate) == (DEAD, 7)
    assert app.health()["mqtt_dead_letters_published"] == 0
