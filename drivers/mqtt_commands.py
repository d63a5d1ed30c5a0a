"""Commands to an MQTT-bridged controller through its profile's `commands`: published, then confirmed.

1. The command must be in the profile; otherwise it is refused without publishing anything.
2. Topic and payload are filled from the template (drivers/profiles/mqtt_command.py) with a fresh
   request_id and published QoS 1 on the gateway's own broker connection. Not connected: "failed";
   no PUBACK in time: "timeout" (the broker may still deliver it).
3. Where the profile names a proof state, the device's next state readings of that point are awaited
   (fed by the ingress through a PointWatch) until one shows it, or the command times out.
Nothing here decides *who* may command: that is the API's policy.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Protocol

import orjson

from drivers.commands import CommandResult
from drivers.errors import DriverConnectionError, DriverTimeout
from drivers.profiles.mqtt_command import MqttCommand, TemplateValue, render
from drivers.profiles.schema import MqttProfile
from drivers.watch import PointWatch
from gateway.model import Value

__all__ = ["MqttCommander", "Publisher", "topic_base"]


class Publisher(Protocol):
    """The one I/O seam: MqttIngress.publish."""

    async def publish(self, topic: str, payload: bytes, ack_within: float = 5.0) -> None: ...


def topic_base(topic_filter: str) -> str:
    """The filter without its trailing wildcards: 'estate/e/access_gate/g/+' → 'estate/e/access_gate/g'."""
    levels = topic_filter.split("/")
    while levels and levels[-1] in ("+", "#"):
        levels.pop()
    return "/".join(levels)


class MqttCommander:
    """Sends one device's commands; same interface as ModbusCommander (`commands`, `execute`)."""

    def __init__(
        self,
        device: str,
        profile: MqttProfile,
        publisher: Publisher,
        watch: PointWatch,
        topic_filter: str,
        variables: Mapping[str, TemplateValue] | None = None,
        ack_within: float = 5.0,
    ) -> None:
        self.device, self.profile, self.publisher, self.watch = device, profile, publisher, watch
        self.base = topic_base(topic_filter)
        self.variables = dict(variables or {})
        self.ack_within = ack_within

    @property
    def commands(self) -> list[str]:
        return sorted(self.profile.commands)

    def message(self, command: MqttCommand, request_id: str) -> tuple[str, bytes]:
        """Topic and JSON payload of one command."""
        values: dict[str, TemplateValue] = {
            **command.defaults,
            **self.variables,
            "base": self.base,
            "device": self.device,
            "request_id": request_id,
        }
        return str(render(command.topic, values)), orjson.dumps(render(command.payload, values))

    async def execute(self, command: str) -> CommandResult:
        spec = self.profile.commands.get(command)
        if spec is None:
            return CommandResult("refused", f"{command!r} is not a command of profile {self.profile.name}")
        request_id = uuid.uuid4().hex
        topic, payload = self.message(spec, request_id)
        if spec.confirm is None:
            failed = await self._publish(command, topic, payload)
            return failed or CommandResult(
                "ok", f"{command} ({request_id}) published (no state to confirm it)"
            )
        with self.watch.next_values(spec.confirm.point) as values:  # first: a quick reply is not missed
            failed = await self._publish(command, topic, payload)
            return failed or await self._confirm(command, spec, values)

    async def _publish(self, command: str, topic: str, payload: bytes) -> CommandResult | None:
        """None when the broker took it."""
        try:
            await self.publisher.publish(topic, payload, self.ack_within)
        except DriverTimeout as exc:
            return CommandResult("timeout", f"{command} to {topic}: {exc}")
        except DriverConnectionError as exc:
            return CommandResult("failed", f"{command} not sent: {exc}")
        return None

    @staticmethod
    async def _confirm(command: str, spec: MqttCommand, values: asyncio.Queue[Value]) -> CommandResult:
        assert spec.confirm is not None
        proof = spec.confirm
        seen: Value | str = "not reported"
        try:
            async with asyncio.timeout(proof.within):
                while True:
                    seen = await values.get()
                    if seen in proof.values:
                        return CommandResult("ok", f"{command} confirmed: {proof.point} = {seen}")
        except TimeoutError:
            return CommandResult(
                "timeout",
                f"{command} published, but {proof.point} is {seen} after {proof.within:g} s, "
                f"not {proof.values}",
            )
