"""MQTT ingress: one aiomqtt client, a persistent session, QoS 1, and acks only after commit.

aiomqtt does not expose manual acknowledgement; its paho client does (`manual_ack_set`, `ack`). We reach
it here, at this one seam, so a PUBACK is sent only when the alert core has committed the message's
effect. A message still unacked when the connection drops is redelivered by the broker (the session is
persistent), and the core absorbs the duplicate idempotently.

Routing (drivers/transports/mqtt_routes.py) is by topic prefix, and on a topic that devices share by
payload fields: there the ingress parses the JSON once and hands it to the picked device's decoder.

The ingress also publishes, for commands to MQTT-bridged controllers (`publish`), on the same connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.errors import DecodeError, DriverConnectionError, DriverTimeout
from drivers.mqtt_device import parse_object
from drivers.transports.dead_letter import DeadLetters
from drivers.transports.mqtt_routes import Route, SharedTopic, prefix, targets
from gateway.model import Clock, DeviceEvent, Envelope, Item

__all__ = ["BrokerSettings", "MqttIngress", "ReadGate", "Route", "SharedTopic"]

log = logging.getLogger(__name__)
SETUP_TIMEOUT = 600.0
Emit = Callable[[Envelope], Awaitable[None]]


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    status_topic: str | None = None
    protocol: str = "5"  # "5" or "3.1.1"
    session_expiry: int = 3600  # seconds the broker keeps our session (and queues QoS 1) while we are away
    receive_maximum: int = 1000  # QoS 1 messages the broker may have in flight to us, unacked
    max_backlog: int = 2000  # read messages not yet handed to the core; above it we stop reading
    tls: bool = False
    ca_file: str | None = None  # None: the system's CAs
    cert_file: str | None = None  # client certificate, where the broker asks for one
    key_file: str | None = None
    tls_insecure: bool = False  # skip the host-name check only; the chain is still verified

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for this broker, or None for plain TCP. Raises OSError/ssl.SSLError on
        unreadable files: a config problem, reported once at start rather than on every reconnect."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.tls_insecure:
            context.check_hostname = False
        return context


class ReadGate:
    """TCP back-pressure for one connection: stop reading the socket, resume later.

    Needed because a broker's in-flight limit is not a bound we can rely on: Mosquitto 2.0.11, measured
    here, keeps sending far beyond Receive Maximum (and max_inflight_messages) once PUBACKs flow. While
    paused, the broker keeps the messages queued for our persistent session; nothing is dropped.
    The read callback mirrors aiomqtt's: a failed read fails the connection.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self.paused = False
        self.pauses = 0

    def _fileno(self) -> int | None:
        sock = self._client._client.socket()
        return sock.fileno() if sock is not None and sock.fileno() >= 0 else None

    def pause(self) -> None:
        fd = self._fileno()
        if not self.paused and fd is not None:
            self._loop.remove_reader(fd)
            self.paused = True
            self.pauses += 1

    def resume(self) -> None:
        fd = self._fileno()
        if self.paused and fd is not None:
            self._loop.add_reader(fd, self._on_readable)
        self.paused = False

    def _on_readable(self) -> None:
        try:
            self._client._client.loop_read()
        except Exception as exc:
            if not self._client._disconnected.done():
                self._client._disconnected.set_exception(exc)


def _gated_queue(high: int, gate: list[ReadGate]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue, made to push back: above `high` it pauses reading, at high/2 resumes.

    It never drops (what is read from the socket is kept); `gate` is filled in once the client exists.
    """

    class GatedQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            super().put_nowait(item)
            if self.qsize() >= high and gate:
                gate[0].pause()

        def get_nowait(self) -> aiomqtt.Message:
            item = super().get_nowait()
            if self.qsize() <= high // 2 and gate:
                gate[0].resume()
            return item

    return GatedQueue


def _session_options(s: BrokerSettings) -> dict[str, Any]:
    """A persistent session in either protocol.

    MQTT 5: clean_start False on *every* connect (aiomqtt's default wipes the session whenever a new
    client object connects), a session expiry, and Receive Maximum as flow control (honoured by some
    brokers; the ReadGate bounds memory where it is not). MQTT 3.1.1: clean_session False.
    """
    if s.protocol == "3.1.1":
        return {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
    connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    connect.SessionExpiryInterval = s.session_expiry
    connect.ReceiveMaximum = s.receive_maximum
    return {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False, "properties": connect}


class MqttIngress:
    """Subscribes to every device's filter and turns messages into Envelopes with ack callbacks."""

    def __init__(self, settings: BrokerSettings, routes: list[Route], clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self._ssl = settings.ssl_context()  # built once: a bad cert path fails here, not every reconnect
        self._routes: dict[str, list[Route | SharedTopic]] = {}
        for target in targets(routes):
            self._routes.setdefault(prefix(target.topic_filter), []).append(target)
        self.unrouted = 0  # messages no device claims (topic, or payload on a shared topic)
        self.unattributed: Counter[str] = Counter()  # shared-topic payloads unreadable before routing
        self.connected = False
        self.connections = 0
        self._generation = 0
        self._client: aiomqtt.Client | None = None
        self._connected_at = 0.0
        self.read_gate: ReadGate | None = None
        self.dead_letters: DeadLetters | None = None  # set by the runtime when configured

    @property
    def backlog(self) -> int:
        """Messages read from the broker that the core has not taken yet (aiomqtt's queue)."""
        return self._client._queue.qsize() if self._client is not None else 0

    def _route(self, topic: str) -> Route | SharedTopic | None:
        levels = topic.split("/")
        for cut in range(len(levels), -1, -1):
            candidates = self._routes.get("/".join(levels[:cut]))
            if candidates:
                for route in candidates:
                    if route.matches(len(levels), cut, topic):
                        return route
        return None

    async def run(self, emit: Emit) -> None:
        """Connect, consume, reconnect with exponential backoff and jitter; runs until cancelled."""
        backoff = 0.5
        while True:
            try:
                await self._session(emit)
            except aiomqtt.MqttError as exc:
                if self.connected or backoff == 0.5:
                    log.warning("mqtt %s:%d: %s; reconnecting", self.settings.host, self.settings.port, exc)
            finally:
                self.connected = False
                self._client = None
            if self.connections and time.monotonic() - self._connected_at > 10:
                backoff = 0.5  # the last session was healthy: start the ladder again
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, 30.0)

    async def _session(self, emit: Emit) -> None:
        s = self.settings
        will = aiomqtt.Will(s.status_topic, b"offline", qos=1, retain=True) if s.status_topic else None
        gate: list[ReadGate] = []
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            queue_type=_gated_queue(s.max_backlog, gate),
            username=s.username,
            password=s.password,
            keepalive=s.keepalive,
            will=will,
            tls_context=self._ssl,
            # Default for connect and for the graceful disconnect at shutdown (which must fit the gateway's
            # 5 s stop budget); subscribe/publish at set-up pass their own, longer timeout.
            timeout=3,
            **_session_options(s),
        )
        client._client.manual_ack_set(True)  # must precede connect: queued messages arrive at once
        gate.append(ReadGate(client))
        self.read_gate = gate[0]
        async with client:
            self._generation += 1
            generation = self._generation
            self._client, self.connected = client, True
            self.connections += 1
            self._connected_at = time.monotonic()
            log.info("mqtt connected to %s:%d as %s", s.host, s.port, s.client_id)
            # Consume first: a persistent session's backlog floods in at connect and may pause reading
            # (ReadGate) before our SUBACK is read; only a running consumer un-pauses it.
            consumer = asyncio.ensure_future(self._consume(client, generation, emit))
            try:
                filters = sorted({t.topic_filter for targets in self._routes.values() for t in targets})
                # Our SUBACK/PUBACK are read after whatever backlog the broker sent first, at the core's
                # pace: waiting long for them is normal, not a dead connection (keepalive catches that).
                if filters:
                    await client.subscribe([(f, 1) for f in filters], timeout=SETUP_TIMEOUT)
                if s.status_topic:
                    await client.publish(s.status_topic, b"online", qos=1, retain=True, timeout=SETUP_TIMEOUT)
                await consumer
            finally:
                if not consumer.done():
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)

    async def _consume(self, client: aiomqtt.Client, generation: int, emit: Emit) -> None:
        async for message in client.messages:
            await self._handle(message, generation, emit)

    async def _handle(self, message: aiomqtt.Message, generation: int, emit: Emit) -> None:
        ack = self._ack_for(message, generation)
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        route, data = self._target(topic, payload)
        if route is None:
            ack()
            return
        now = route.stats.last_seen = self.clock.now()
        try:
            items: list[Item] = (
                route.decoder.decode(topic, payload, int(now * 1e9))
                if data is None
                else route.decoder.decode_object(topic, data, len(payload), int(now * 1e9))
            )
        except DecodeError as exc:
            self._reject(route, topic, exc.reason, exc, payload)
            ack()  # nothing to commit: a bad payload is consumed, counted and logged
            return
        except Exception as exc:  # a decoder bug: the same, or a redelivered poison message wedges ingest
            self._reject(route, topic, "decoder_crash", exc, payload)
            ack()
            return
        if route.watch is not None:
            route.watch.update(items)
        if not items:  # ignored or a duplicate: consumed, counted by the decoder, nothing to commit
            ack()
            return
        events = sum(1 for item in items if isinstance(item, DeviceEvent))
        route.stats.events += events
        route.stats.readings += len(items) - events
        await emit(Envelope(items, ack))

    def _target(self, topic: str, payload: bytes) -> tuple[Route | None, dict[str, Any] | None]:
        """The device a message is for (None: counted, to be acked), with the parsed payload when a
        shared topic needed it to tell."""
        target = self._route(topic)
        if not isinstance(target, SharedTopic):
            if target is None:
                self.unrouted += 1
            return target, None
        try:
            if len(payload) > target.max_payload:
                raise DecodeError("too_large", f"{len(payload)} bytes")
            data = parse_object(payload)
        except DecodeError as exc:
            self.unattributed[exc.reason] += 1
            if self.dead_letters is not None:
                self.dead_letters.offer(topic, exc.reason, payload)
            if self.unattributed.total() & 0x3FF == 1:
                log.warning("mqtt: unreadable payload on shared topic %s: %s", topic, exc)
            return None, None
        route = target.pick(data)
        if route is None:
            self.unrouted += 1
        return route, data

    async def publish(self, topic: str, payload: bytes, ack_within: float = 5.0) -> None:
        """Publish QoS 1 on the ingress's connection (commands to MQTT-bridged devices).

        Raises DriverConnectionError while disconnected or when the client fails, DriverTimeout when the
        broker has not acknowledged within `ack_within` s (also when reading is paused by the ReadGate: our
        PUBACK then waits behind the backlog).
        """
        client = self._client
        if client is None or not self.connected:
            s = self.settings
            raise DriverConnectionError(f"not connected to the broker at {s.host}:{s.port}")
        try:
            async with asyncio.timeout(ack_within):
                await client.publish(topic, payload, qos=1, timeout=math.inf)
        except TimeoutError as exc:
            raise DriverTimeout(f"the broker did not acknowledge within {ack_within:g} s") from exc
        except aiomqtt.MqttError as exc:
            raise DriverConnectionError(f"publish failed: {exc}") from exc

    def send_nowait(self, topic: str, payload: bytes) -> bool:
        """Publish QoS 0 without waiting (dead letters): handed to the client's send buffer, or False."""
        client = self._client
        if client is None or not self.connected:
            return False
        return client._client.publish(topic, payload, qos=0).rc == 0

    def _reject(self, route: Route, topic: str, reason: str, exc: Exception, payload: bytes) -> None:
        route.stats.error(reason)
        if self.dead_letters is not None:
            self.dead_letters.offer(topic, reason, payload, (route.decoder.estate, route.decoder.device))
        if sum(route.stats.errors.values()) & 0x3FF == 1:  # the 1st, 1025th, ...: loud enough, never a flood
            log.warning(
                "%s/%s: rejected payload on %s: %s: %s",
                route.decoder.estate, route.decoder.device, topic, reason, exc,
                exc_info=reason == "decoder_crash",
            )  # fmt: skip

    def _ack_for(self, message: aiomqtt.Message, generation: int) -> Callable[[], None]:
        client, mid, qos = self._client, message.mid, message.qos
        if qos == 0 or client is None:
            return _noop

        def ack() -> None:
            # An ack for a previous connection must not go out on the new one: the broker will
            # redeliver that message instead, and the core dedups it.
            if generation == self._generation and self.connected:
                client._client.ack(mid, qos)

        return ack


def _noop() -> None:
    return None
