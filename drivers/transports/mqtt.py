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

import aiomqtt
from paho.mqtt.client import topic_matches_sub

from drivers.errors import DecodeError
from drivers.mqtt_device import MqttJsonDecoder
from drivers.stats import DeviceStats
from gateway.model import Clock, DeviceEvent, Envelope

log = logging.getLogger(__name__)
Emit = Callable[[Envelope], Awaitable[None]]


@dataclass
class Route:
    topic_filter: str
    decoder: MqttJsonDecoder
    stats: DeviceStats


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    status_topic: str | None = None


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

    def _route(self, topic: str) -> Route | None:
        levels = topic.split("/")
        for cut in range(len(levels), -1, -1):
            candidates = self._routes.get("/".join(levels[:cut]))
            if candidates:
                for route in candidates:
                    if topic_matches_sub(route.topic_filter, topic):
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
            clean_session=False,  # persistent session: the broker queues QoS 1 while we are away
            username=s.username,
            password=s.password,
            keepalive=s.keepalive,
            will=will,
            timeout=10,
        )
        client._client.manual_ack_set(True)  # must precede connect: queued messages arrive at once
        async with client:
            self._generation += 1
            generation = self._generation
            self._client, self.connected = client, True
            self.connections += 1
            self._connected_at = time.monotonic()
            log.info("mqtt connected to %s:%d as %s", s.host, s.port, s.client_id)
            filters = sorted({r.topic_filter for routes in self._routes.values() for r in routes})
            if filters:
                await client.subscribe([(f, 1) for f in filters])
            if s.status_topic:
                await client.publish(s.status_topic, b"online", qos=1, retain=True)
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
        route.stats.last_seen = self.clock.now()
        try:
            items = route.decoder.decode(topic, payload, int(self.clock.now() * 1e9))
        except DecodeError as exc:
            route.stats.error(exc.reason)
            if (
                sum(route.stats.errors.values()) & 0x3FF == 1
            ):  # the 1st, 1025th, ...: loud enough, never a flood
                log.warning(
                    "%s/%s: rejected payload on %s: %s",
                    route.decoder.estate,
                    route.decoder.device,
                    topic,
                    exc,
                )
            ack()  # nothing to commit: a bad payload is consumed, counted and logged
            return
        events = sum(1 for item in items if isinstance(item, DeviceEvent))
        route.stats.events += events
        route.stats.readings += len(items) - events
        await emit(Envelope(items, ack))

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
