"""Commands to a Modbus device through its profile's control keys: checked, written, confirmed.

1. The key must be in the profile, and the controller's supported-keys bitmap must list it; otherwise the
   command is refused without writing anything.
2. `[key, 65535 - key]` is written in one FC16 write; a Modbus exception is a refusal.
3. Where the profile names a proof state, that point is read back until it shows it, or the command times
   out. Nothing here decides *who* may command: that is the API's policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from drivers.errors import DriverError, DriverProtocolError, DriverTimeout
from drivers.profiles.schema import ModbusProfile
from drivers.registers import decode_point
from drivers.transports.modbus import ModbusEndpoint
from gateway.model import Clock

Outcome = Literal["ok", "refused", "timeout", "failed"]


@dataclass(frozen=True)
class CommandResult:
    outcome: Outcome
    detail: str


class ModbusCommander:
    """Sends one device's commands; shares the device's endpoint (and its lock) with the poller."""

    def __init__(self, profile: ModbusProfile, endpoint: ModbusEndpoint, unit_id: int, clock: Clock) -> None:
        if profile.control is None:
            raise ValueError(f"profile {profile.name!r} has no control section")
        self.profile, self.control = profile, profile.control
        self.endpoint, self.unit_id, self.clock = endpoint, unit_id, clock

    @property
    def commands(self) -> list[str]:
        return sorted(self.control.keys)

    async def execute(self, command: str) -> CommandResult:
        key = self.control.keys.get(command)
        if key is None:
            return CommandResult("refused", f"{command!r} is not a command of profile {self.profile.name}")
        try:
            if not await self._supported(key):
                return CommandResult("refused", f"the controller does not support key {key} ({command})")
            await self.endpoint.write_registers(self.control.key_register, [key, 65535 - key], self.unit_id)
        except DriverProtocolError as exc:
            return CommandResult("refused", f"the controller refused {command}: {exc}")
        except DriverTimeout as exc:
            return CommandResult("timeout", str(exc))
        except DriverError as exc:
            return CommandResult("failed", str(exc))
        return await self._confirm(command)

    async def _supported(self, key: int) -> bool:
        f = key - self.control.base_key
        if f < 0:
            return False
        [word] = await self.endpoint.read("holding", self.control.bitmap + f // 16, 1, self.unit_id)
        return bool((int(word) >> (15 - f % 16)) & 1)

    async def _confirm(self, command: str) -> CommandResult:
        proof = self.control.confirm.get(command)
        if proof is None:
            return CommandResult("ok", f"{command} written (no state to confirm it)")
        point = next((p for p in self.profile.points if p.name == proof.point), None)
        if point is None:
            return CommandResult("failed", f"confirm point {proof.point!r} is not in the profile")
        deadline = self.clock.monotonic() + self.control.confirm_within
        seen = None
        while True:
            try:
                words = await self.endpoint.read(point.table, point.address, point.words, self.unit_id)
                seen = decode_point([int(w) for w in words], point, self.profile).value
            except DriverError as exc:
                seen = f"unreadable ({exc})"
            if seen in proof.values:
                return CommandResult("ok", f"{command} confirmed: {proof.point} = {seen}")
            if self.clock.monotonic() >= deadline:
                return CommandResult(
                    "timeout", f"{command} written, but {proof.point} is {seen}, not {proof.values}"
                )
            await asyncio.sleep(0.2)
