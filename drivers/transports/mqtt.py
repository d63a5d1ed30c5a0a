"""MQTT ingress: one aiomqtt client, a persistent session, QoS 1, and acks only after commit.

aiomqtt does not expose manual acknowledgement; its paho client does (`manual_ack_set`, `ack`). We reach
it here, at this one seam, so a PUBACK is sent only when the alert core has committed the message's
effect. A message still unacked when the connection drops is redelivered by the broker (the session is
persistent), and the core absorbs the duplicate idempotently.

Routing is by topic prefix: each device's filter without its trailing wildcard is a dict key, so the
cost per message is a few dict look-ups, not a scan over every device.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.client import topic_matches_sub
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.errors import DecodeError
from drivers.mqtt_device import MqttJsonDecoder
from drivers.stats import DeviceStats
from gateway.model import Clock, DeviceEvent, Envelope

log = logging.getLogger(__name__)
SETUP_TIMEOUT = 600.0
Emit = Callable[[Envelope], Awaitable[None]]


@dataclass
class Route:
    topic_filter: str
    decoder: MqttJsonDecoder
    stats: DeviceStats
    # Precompiled match for the usual "literal/prefix/+" and "literal/prefix/#" filters: levels after the
    # prefix, or -1 for "any" (#). None: the filter has inner wildcards, use paho's general matcher.
    _tail_levels: int | None = None

    def __post_init__(self) -> None:
        levels = self.topic_filter.split("/")
        literal = len(_prefix(self.topic_filter).split("/")) if _prefix(self.topic_filter) else 0
        tail = levels[literal:]
        if tail == ["#"]:
            self._tail_levels = -1
        elif all(level == "+" for level in tail):
            self._tail_levels = len(tail)

    def matches(self, topic_levels: int, prefix_levels: int, topic: str) -> bool:
        """The topic is already known to start with this route's literal prefix."""
        if self._tail_levels == -1:
            return True
        if self._tail_levels is not None:
            return topic_levels - prefix_levels == self._tail_levels
        return bool(topic_matches_sub(self.topic_filter, topic))


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


def _prefix(topic_filter: str) -> str:
    """The literal part of a filter before its first wildcard level."""
    literal = []
    for level in topic_filter.split("/"):
        if level in ("+", "#"):
            break
        literal.append(level)
    return "/".join(literal)


class MqttIngress:
    """Subscribes to every device's filter and turns messages into Envelopes with ack callbacks."""

    def __init__(self, settings: BrokerSettings, routes: list[Route], clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self._routes: dict[str, list[Route]] = {}
        for route in routes:
            self._routes.setdefault(_prefix(route.topic_filter), []).append(route)
        self.unrouted = 0
        self.connected = False
        self.connections = 0
        self._generation = 0
        self._client: aiomqtt.Client | None = None
        self._connected_at = 0.0
        self.read_gate: ReadGate | None = None

    @property
    def backlog(self) -> int:
        """Messages read from the broker that the core has not taken yet (aiomqtt's queue)."""
        return self._client._queue.qsize() if self._client is not None else 0

    def _route(self, topic: str) -> Route | None:
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
                filters = sorted({r.topic_filter for routes in self._routes.values() for r in routes})
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
        route = self._route(topic)
        if route is None:
            self.unrouted += 1
            ack()
            return
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        now = route.stats.last_seen = self.clock.now()
        try:
            items = route.decoder.decode(topic, payload, int(now * 1e9))
        except DecodeError as exc:
            self._reject(route, topic, exc.reason, exc)
            ack()  # nothing to commit: a bad payload is consumed, counted and logged
            return
        except Exception as exc:  # a decoder bug: the same, or a redelivered poison message wedges ingest
            self._reject(route, topic, "decoder_crash", exc)
            ack()
            return
        events = sum(1 for item in items if isinstance(item, DeviceEvent))
        route.stats.events += events
        route.stats.readings += len(items) - events
        await emit(Envelope(items, ack))

    @staticmethod
    def _reject(route: Route, topic: str, reason: str, exc: Exception) -> None:
        route.stats.error(reason)
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
