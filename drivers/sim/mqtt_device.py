"""A device bridged to MQTT as the simulator plays it: gate controllers, ANPR cameras.

`style` picks whose JSON it speaks (drivers/sim/vendor_payloads.py): "generic" (the generic profiles'),
"uhppoted" (uhppoted-mqtt), "hikvision" (ISAPI AccessControllerEvent) or "frigate" (tracked_object_update).
`stamp` writes fixed payload fields into everything it publishes: a device on a shared topic is told
apart by them (its config's `match`, e.g. {camera: gate_cam}).

A generic controller also takes commands: it subscribes to `{base}/command` and answers open_door by
reporting door_open true, then false after `door_hold` seconds, as a real door does when it shuts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import aiomqtt
import orjson

from drivers.sim.vendor_payloads import HEARTBEATS, Style, build_event


def stamp(payload: dict[str, Any], fields: Mapping[str, object]) -> dict[str, Any]:
    """Set each dotted path of `fields` in `payload` (creating objects on the way)."""
    for path, value in fields.items():
        node = payload
        *parents, last = path.split(".")
        for part in parents:
            child = node.get(part)
            node = node.setdefault(part, {}) if not isinstance(child, dict) else child
        node[last] = value
    return payload


class MqttDeviceSimulator:
    """Publishes one device's events, state and heartbeats under `base` (…/{event|state|heartbeat})."""

    def __init__(
        self,
        host: str,
        port: int,
        base: str,
        heartbeat_interval: float = 5.0,
        style: Style = "generic",
        fields: Mapping[str, object] | None = None,
        zone: str = "Asia/Shanghai",
    ) -> None:
        self.host, self.port, self.base = host, port, base
        self.heartbeat_interval = heartbeat_interval
        self.style, self.fields, self.zone = style, dict(fields or {}), zone
        self.silent = False  # scenario: the controller stops talking
        self.answer_commands = True  # False: commands arrive and nothing happens (a jammed lock)
        self.door_hold = 3.0
        self.commands: list[dict[str, Any]] = []  # every command received, decoded
        self.published = 0
        self._record = int(time.time()) % 100_000  # record ids (event-id, serialNo) go on from here
        self._client: aiomqtt.Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def command_topic(self) -> str:
        return f"{self.base}/command"

    async def __aenter__(self) -> MqttDeviceSimulator:
        self._client = aiomqtt.Client(self.host, self.port, identifier=None, timeout=10)
        await self._client.__aenter__()
        if self.style == "generic":
            await self._client.subscribe(self.command_topic, qos=1)
            self._spawn(self._serve_commands(self._client))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, channel: str, payload: dict[str, Any] | bytes, qos: int = 1) -> None:
        """Publish on `{base}/{channel}`, or on `base` itself when channel is ''."""
        assert self._client is not None, "use async with MqttDeviceSimulator(...)"
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        await self._client.publish(f"{self.base}/{channel}" if channel else self.base, data, qos=qos)
        self.published += 1

    async def event(self, kind: str, **attributes: Any) -> dict[str, Any]:
        """Publish one event in this device's style; returns the payload (to re-send it as a duplicate)."""
        self._record += 1
        channels, payload = build_event(self.style, kind, attributes, self._record, self.zone)
        stamp(payload, self.fields)
        for channel in channels:
            await self.publish(channel, payload)
        return payload

    async def heartbeats(self) -> None:
        """Publish a heartbeat every interval while not silent; runs until cancelled."""
        while True:
            if not self.silent and HEARTBEATS[self.style]:
                await self.publish("heartbeat", {"ts": time.time()}, qos=0)
            await asyncio.sleep(self.heartbeat_interval)

    async def _serve_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.topic.value != self.command_topic or not isinstance(message.payload, bytes):
                continue
            with contextlib.suppress(orjson.JSONDecodeError):
                command = orjson.loads(message.payload)
                if isinstance(command, dict):
                    self.commands.append(command)
                    if self.answer_commands and command.get("command") == "open_door":
                        await self._door(True, command.get("request_id"))
                        self._spawn(self._close_later(command.get("request_id")))

    async def _close_later(self, request_id: object) -> None:
        await asyncio.sleep(self.door_hold)
        await self._door(False, request_id)

    async def _door(self, open_: bool, request_id: object) -> None:
        await self.publish("state", {"door_open": open_, "ts": time.time(), "request_id": request_id})
