"""A device bridged to MQTT as the simulator plays it: gate controllers, ANPR cameras (generic JSON)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiomqtt
import orjson


class MqttDeviceSimulator:
    """Publishes one controller's events, state and heartbeats under `base` (…/{event|state|heartbeat})."""

    def __init__(self, host: str, port: int, base: str, heartbeat_interval: float = 5.0) -> None:
        self.host, self.port, self.base = host, port, base
        self.heartbeat_interval = heartbeat_interval
        self.silent = False  # scenario: the controller stops talking
        self._client: aiomqtt.Client | None = None
        self.published = 0

    async def __aenter__(self) -> MqttDeviceSimulator:
        self._client = aiomqtt.Client(self.host, self.port, identifier=None, timeout=10)
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    async def publish(self, channel: str, payload: dict[str, Any] | bytes, qos: int = 1) -> None:
        assert self._client is not None, "use async with MqttDeviceSimulator(...)"
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        await self._client.publish(f"{self.base}/{channel}", data, qos=qos)
        self.published += 1

    async def event(self, kind: str, **attributes: Any) -> None:
        await self.publish("event", {"event": kind, "ts": time.time(), **attributes})

    async def heartbeats(self) -> None:
        """Publish a heartbeat every interval while not silent; runs until cancelled."""
        while True:
            if not self.silent:
                await self.publish("heartbeat", {"ts": time.time()}, qos=0)
            await asyncio.sleep(self.heartbeat_interval)
