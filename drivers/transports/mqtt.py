"""MQTT ingress: one aiomqtt client, a persistent session, QoS 1, and acks only after commit.

aiomqtt does not expose manual acknowledgement; its paho client does. We reach it at this one seam
(drivers/transports/mqtt_inbox.py: the inbound path, framed and acked in batches), so a PUBACK is sent
only when the alert core has committed the message's effect. A message still unacked when the connection
drops is redelivered by the broker (the session is persistent), and the core absorbs the duplicate
idempotently.

The consumer takes what the inbox holds in one go (up to MAX_BATCH messages), decodes each payload once,
and hands the core one Envelope per batch whose ack acknowledges every message of the batch, in order:
no Task, Envelope or closure per message (issue 9).

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
from drivers.transports.mqtt_inbox import Delivery, Inbox, supported
from drivers.transports.mqtt_outbox import Outbox
from drivers.transports.mqtt_routes import Route, SharedTopic, prefix, targets
from gateway.model import Clock, DeviceEvent, Envelope, Item

__all__ = ["BrokerSettings", "Inbox", "MqttIngress", "Route", "SharedTopic"]

log = logging.getLogger(__name__)
SETUP_TIMEOUT = 600.0
MAX_BATCH = 200  # messages per Envelope: bounds the core's batch, not the latency (nothing waits to fill)
TOPIC_CACHE = 65536  # topic → route entries kept (cleared when full: unknown topics cannot grow it)
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
    max_backlog: int = 2000  # messages read and not yet acknowledged; above it we stop reading
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


def _session_options(s: BrokerSettings) -> dict[str, Any]:
    """A persistent session in either protocol.

    MQTT 5: clean_start False on *every* connect (aiomqtt's default wipes the session whenever a new
    client object connects), a session expiry, and Receive Maximum as flow control (honoured by some
    brokers; the Inbox bounds memory where it is not). MQTT 3.1.1: clean_session False.
    """
    if s.protocol == "3.1.1":
        return {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
    connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    connect.SessionExpiryInterval = s.session_expiry
    connect.ReceiveMaximum = s.receive_maximum
    return {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False, "properties": connect}


class MqttIngress:
    """Subscribes to every device's filter and turns messages into Envelopes with ack callbacks."""

    def __init__(
        self, settings: BrokerSettings, routes: list[Route], clock: Clock, outbox: Outbox | None = None
    ) -> None:
        self.settings, self.clock = settings, clock
        self._ssl = settings.ssl_context()  # built once: a bad cert path fails here, not every reconnect
        self._routes: dict[str, list[Route | SharedTopic]] = {}
        for target in targets(routes):
            self._routes.setdefault(prefix(target.topic_filter), []).append(target)
        self.accepted = 0  # messages whose items went to the core (several per Envelope)
        self.unrouted = 0  # messages no device claims (topic, or payload on a shared topic)
        self.unattributed: Counter[str] = Counter()  # shared-topic payloads unreadable before routing
        self.connected = False
        self.connections = 0
        self._client: aiomqtt.Client | None = None
        self._connected_at = 0.0
        self.read_gate: Inbox | None = None  # this connection's inbox: back-pressure counters
        self._topics: dict[bytes, tuple[str, Route | SharedTopic | None]] = {}
        self.dead_letters: DeadLetters | None = None  # set by the runtime when configured
        self.outbox = outbox  # the gateway's own QoS 1 publishes (the egress connection's), across sessions

    @property
    def backlog(self) -> int:
        """Messages read from the broker that the ingress has not handed to the core yet."""
        return self.read_gate.backlog if self.read_gate is not None and self._client is not None else 0

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
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
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
        if not supported(client):
            raise RuntimeError("paho-mqtt without the internals drivers/transports/mqtt_inbox.py needs")
        client._client.manual_ack_set(True)  # must precede connect: queued messages arrive at once
        inbox = Inbox(client, s.max_backlog)
        inbox.install()  # also before connect: the backlog floods in right after CONNACK
        inbox.outbox = self.outbox
        self.read_gate = inbox
        try:
            await self._connected(client, inbox, emit)
        finally:
            if self.outbox is not None:  # what the broker has not acknowledged goes again next session
                self.outbox.detach()

    async def _connected(self, client: aiomqtt.Client, inbox: Inbox, emit: Emit) -> None:
        s = self.settings
        async with client:
            if self.outbox is not None:
                self.outbox.attach(client._client, inbox.receive_maximum, s.protocol != "3.1.1")
            self._client, self.connected = client, True
            self.connections += 1
            self._connected_at = time.monotonic()
            log.info("mqtt connected to %s:%d as %s", s.host, s.port, s.client_id)
            # Consume first: a persistent session's backlog floods in at connect and may pause reading
            # before our SUBACK is read; only a running consumer un-pauses it.
            consumer = asyncio.ensure_future(self._consume(inbox, emit))
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

    async def _consume(self, inbox: Inbox, emit: Emit) -> None:
        while True:
            await inbox.wait()
            batch = inbox.take(MAX_BATCH)
            items, mids, exactly_once = self._decode_batch(batch)
            ack = inbox.acker(mids, len(batch), exactly_once)
            if items:
                await emit(Envelope(items, ack))
            else:  # nothing to commit (ignored, rejected, unrouted): consumed now
                ack()

    def _decode_batch(self, batch: list[Delivery]) -> tuple[list[Item], list[int], tuple[int, ...]]:
        """Every message's items, in order, and the packet ids to acknowledge once they are committed."""
        items: list[Item] = []
        mids: list[int] = []
        exactly_once: tuple[int, ...] = ()
        topics, now = self._topics, self.clock.now
        for raw_topic, payload, mid, qos in batch:
            if qos == 1:
                mids.append(mid)
            elif qos == 2:
                exactly_once += (mid,)
            known = topics.get(raw_topic)
            if known is None:
                known = self._learn(raw_topic)
            topic, target = known
            if target is None:
                self.unrouted += 1
                continue
            route, data = (
                (target, None) if not isinstance(target, SharedTopic) else self._pick(target, topic, payload)
            )
            if route is not None:
                self._decode(route, topic, payload, data, now(), items)
        return items, mids, exactly_once

    def _learn(self, raw_topic: bytes) -> tuple[str, Route | SharedTopic | None]:
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError:  # paho refuses these too; no device can be meant
            return "", None
        if len(self._topics) >= TOPIC_CACHE:
            self._topics.clear()
        known = self._topics[raw_topic] = (topic, self._route(topic))
        return known

    def _decode(
        self, route: Route, topic: str, payload: bytes, data: dict[str, Any] | None, now: float,
        items: list[Item],
    ) -> None:  # fmt: skip
        """One message through its device's decoder into `items`; a bad payload is counted and dropped."""
        route.stats.last_seen = now
        try:
            decoded: list[Item] = (
                route.decoder.decode(topic, payload, int(now * 1e9))
                if data is None
                else route.decoder.decode_object(topic, data, len(payload), int(now * 1e9))
            )
        except DecodeError as exc:  # consumed, counted and logged; acked with its batch
            self._reject(route, topic, exc.reason, exc, payload)
            return
        except Exception as exc:  # a decoder bug: the same, or a redelivered poison message wedges ingest
            self._reject(route, topic, "decoder_crash", exc, payload)
            return
        if route.watch is not None:
            route.watch.update(decoded)
        if not decoded:  # ignored or a duplicate: counted by the decoder
            return
        events = 0
        for item in decoded:  # a plain loop: a generator per message cost ~4 % of a drain (py-spy)
            if type(item) is DeviceEvent:
                events += 1
        route.stats.events += events
        route.stats.readings += len(decoded) - events
        items.extend(decoded)
        self.accepted += 1

    def _pick(
        self, target: SharedTopic, topic: str, payload: bytes
    ) -> tuple[Route | None, dict[str, Any] | None]:
        """On a topic devices share, the device a payload is for (None: counted), with the parsed payload."""
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
        broker has not acknowledged within `ack_within` s (also when reading is paused by the Inbox: our
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

    def send_nowait(self, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Publish without waiting (dead letters at QoS 0; the bench's egress at QoS 1): handed to the
        client's send queue, or False while disconnected. At QoS 1 paho keeps it until the broker acks."""
        client = self._client
        if client is None or not self.connected:
            return False
        return client._client.publish(topic, payload, qos=qos).rc == 0

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
