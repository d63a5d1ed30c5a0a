"""The shipped broker configs (deploy/mosquitto) on a real Mosquitto: the gateway over TLS with its user
and password, the per-estate ACL, refused credentials and plain text, and an estate edge broker bridging
its estate's topics to the central broker over TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from drivers.transports.mqtt import BrokerSettings
from gateway.config import parse_config
from gateway.runtime.app import App
from gateway.runtime.broker import free_port
from tests.integration.deployed_broker import (
    PASSWORDS,
    DeployedMosquitto,
    central_config,
    edge_config,
    make_certs,
)

pytestmark = pytest.mark.integration

GATE = "estate/sunshine/access_gate/gate-north"
MAPLE_GATE = "estate/maple/access_gate/gate-b"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def central(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedMosquitto]:
    folder, port = tmp_path_factory.mktemp("central"), free_port()
    with DeployedMosquitto(central_config(folder, certs, port), port, folder) as broker:
        yield broker


def tls(certs: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs / "ca.crt"))


def client(
    port: int, user: str | None, password: str | None, context: ssl.SSLContext | None, timeout: float = 5
) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", port, identifier=f"eg-test-{uuid.uuid4().hex[:8]}", username=user, password=password,
        tls_context=context, protocol=aiomqtt.ProtocolVersion.V311, timeout=timeout,
    )  # fmt: skip


def site(port: int, certs: Path, db: Path) -> str:
    return f"""\
gateway_id: tls-gw
mqtt:
  host: 127.0.0.1
  port: {port}
  client_id: eg-test-{uuid.uuid4().hex[:8]}
  username: estate-gateway
  password: ${{MQTT_PASSWORD}}
  tls: true
  ca_file: {certs}/ca.crt
store: {{path: "{db}"}}
api: {{enabled: false}}
estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
    gate_hours: "00:00-24:00"
    devices:
      - {{id: gate-north, family: access_gate, profile: generic_access_gate, mqtt: {{topic: "{GATE}/+"}}}}
  - id: maple
    name: {{zh: 枫林苑, en: Maple Court}}
    gate_hours: "00:00-24:00"
    devices:
      - {{id: gate-b, family: access_gate, profile: generic_access_gate, mqtt: {{topic: "{MAPLE_GATE}/+"}}}}
"""


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def gateway(broker: DeployedMosquitto, certs: Path, tmp_path: Path) -> AsyncIterator[App]:
    config = parse_config(
        site(broker.port, certs, tmp_path / "gw.db"),
        "site.yaml",
        {"MQTT_PASSWORD": PASSWORDS["estate-gateway"]},
    )
    app, stop = App(config, base_dir=tmp_path), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await until(
            lambda: (app.mqtt is not None and app.mqtt.connected) or task.done(), 15, "mqtt connected"
        )
        if task.done():
            task.result()
        await asyncio.sleep(0.3)  # the subscription settles (no SUBACK signal from the ingress)
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def events(app: App, estate: str, device: str) -> int:
    return app.stats.for_device(estate, device).events


async def test_gateway_receives_a_device_message_over_tls(
    central: DeployedMosquitto, certs: Path, tmp_path: Path
) -> None:
    async with gateway(central, certs, tmp_path) as app:
        async with client(central.port, "sunshine-edge", PASSWORDS["sunshine-edge"], tls(certs)) as edge:
            await edge.publish(f"{GATE}/event", b'{"event": "door_forced"}', qos=1)
        await until(lambda: events(app, "sunshine", "gate-north") == 1, 10, "the door_forced event")
        await until(lambda: app.service.opened >= 1, 10, "an incident")


async def test_an_estate_edge_user_cannot_publish_for_another_estate(
    central: DeployedMosquitto, certs: Path, tmp_path: Path
) -> None:
    async with gateway(central, certs, tmp_path) as app:
        async with client(central.port, "sunshine-edge", PASSWORDS["sunshine-edge"], tls(certs)) as edge:
            await edge.publish(
                f"{MAPLE_GATE}/event", b'{"event": "door_forced"}', qos=1
            )  # dropped by the ACL
            await edge.publish(f"{GATE}/event", b'{"event": "door_forced"}', qos=1)  # the marker after it
        async with client(central.port, "maple-edge", PASSWORDS["maple-edge"], tls(certs)) as maple:
            await maple.publish(f"{MAPLE_GATE}/event", b'{"event": "door_forced"}', qos=1)
        # One client's messages arrive in order: once sunshine's marker is in, the dropped one is not coming.
        await until(lambda: events(app, "sunshine", "gate-north") == 1, 10, "the sunshine marker")
        await until(lambda: events(app, "maple", "gate-b") == 1, 10, "maple's own event")
        await asyncio.sleep(0.3)
        assert events(app, "maple", "gate-b") == 1, "sunshine-edge published into maple's topics"


async def test_a_wrong_password_is_refused(central: DeployedMosquitto, certs: Path) -> None:
    with pytest.raises(aiomqtt.MqttCodeError):
        async with client(central.port, "sunshine-edge", "not-the-password", tls(certs)):
            pass
    with pytest.raises(aiomqtt.MqttCodeError):
        async with client(central.port, None, None, tls(certs)):  # anonymous
            pass


async def test_plain_text_and_untrusted_certificates_fail(central: DeployedMosquitto, certs: Path) -> None:
    with pytest.raises(aiomqtt.MqttError):
        # The listener speaks TLS only: a plain CONNECT gets no CONNACK (the broker drops it or we time out).
        async with client(central.port, "sunshine-edge", PASSWORDS["sunshine-edge"], None, timeout=2):
            pass
    # The gateway's side: without our CA (system CAs only) the broker's certificate is not trusted; with
    # it, the handshake succeeds. (A raw socket: paho leaks its socket on a failed handshake.)
    for ca_file, trusted in ((None, False), (str(certs / "ca.crt"), True)):
        settings = BrokerSettings("127.0.0.1", central.port, "eg-test", tls=True, ca_file=ca_file)
        context = settings.ssl_context()
        assert context is not None
        with socket.create_connection(("127.0.0.1", central.port), timeout=5) as raw:
            if trusted:
                context.wrap_socket(raw, server_hostname="127.0.0.1").close()
            else:
                with pytest.raises(ssl.SSLCertVerificationError):
                    context.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.timeout(60)
async def test_an_edge_broker_bridges_its_estate_to_the_central_broker(
    central: DeployedMosquitto, certs: Path, tmp_path: Path
) -> None:
    edge_port = free_port()
    (tmp_path / "edge").mkdir()
    edge = DeployedMosquitto(
        edge_config(tmp_path / "edge", certs, edge_port, central.port), edge_port, tmp_path / "edge"
    )
    async with gateway(central, certs, tmp_path) as app:
        with edge:
            async with client(edge_port, None, None, None) as device:  # a device on the estate LAN
                # The bridge connects in the background: publish until the first message crosses (bounded).
                for _ in range(40):
                    await device.publish(f"{GATE}/event", b'{"event": "door_forced"}', qos=1)
                    await asyncio.sleep(0.25)
                    if events(app, "sunshine", "gate-north"):
                        break
                assert events(app, "sunshine", "gate-north") >= 1, (
                    f"nothing bridged: {edge.log_text()[-1500:]}"
                )
                # Commands go the other way: the gateway's publish reaches the device on the edge broker.
                await device.subscribe(f"{GATE}/command", qos=1)
                await asyncio.sleep(0.3)
                assert app.mqtt is not None
                await app.mqtt.publish(f"{GATE}/command", b'{"command": "open_door"}')
                async with asyncio.timeout(10):
                    async for message in device.messages:
                        if message.topic.matches(f"{GATE}/command"):
                            assert message.payload == b'{"command": "open_door"}'
                            break
