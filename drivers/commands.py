"""Commands to a Modbus device through its profile: DSE-style control keys, and relay pulses.

Control keys (ModbusCommander):

1. The key must be in the profile, and the controller's supported-keys bitmap must list it; otherwise the
   command is refused without writing anything.
2. `[key, 65535 - key]` is written in one FC16 write; a Modbus exception is a refusal.
3. Where the profile names a proof state, that point is read back until it shows it, or the command times
   out.

Relay pulses (PulseCommander): coil ON, hold, coil OFF, then the proof state as above.
Nothing here decides *who* may command: that is the API's policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

from drivers.errors import DriverError, DriverProtocolError, DriverTimeout
from drivers.profiles.control import CoilPulse
from drivers.profiles.schema import ModbusPoint, ModbusProfile
from drivers.registers import decode_point
from drivers.transports.modbus import ModbusEndpoint
from gateway.model import Clock

Outcome = Literal["ok", "refused", "timeout", "failed"]


@dataclass(frozen=True)
class CommandResult:
    outcome: Outcome
    detail: str


class Commander(Protocol):
    """What the API drives: a device's commands, each executed to an outcome (never raising)."""

    @property
    def commands(self) -> list[str]: ...

    async def execute(self, command: str) -> CommandResult: ...


class CommandSet:
    """One device's commanders as one (a profile with both control keys and relay pulses)."""

    def __init__(self, commanders: list[Commander]) -> None:
        self._by_command = {command: c for c in commanders for command in c.commands}

    @property
    def commands(self) -> list[str]:
        return sorted(self._by_command)

    async def execute(self, command: str) -> CommandResult:
        commander = self._by_command.get(command)
        if commander is None:
            return CommandResult("refused", f"{command!r} is not a command of this device")
        return await commander.execute(command)


def _failed(exc: DriverError, refusal: str) -> CommandResult:
    """An exception reply is the device saying no; a timeout or a lost connection is not knowing."""
    if isinstance(exc, DriverProtocolError):
        return CommandResult("refused", f"{refusal}: {exc}")
    return CommandResult("timeout" if isinstance(exc, DriverTimeout) else "failed", str(exc))


async def confirm_state(
    endpoint: ModbusEndpoint, unit_id: int, profile: ModbusProfile, command: str,
    point: ModbusPoint, values: list[str | int | float | bool], within: float, clock: Clock,
) -> CommandResult:  # fmt: skip
    """Read `point` back until it shows one of `values`, or time out after `within` seconds."""
    deadline = clock.monotonic() + within
    seen: object = None
    while True:
        try:
            words = await endpoint.read(point.table, point.address, point.words, unit_id)
            seen = decode_point([int(w) for w in words], point, profile).value
        except DriverError as exc:
            seen = f"unreadable ({exc})"
        if seen in values:
            return CommandResult("ok", f"{command} confirmed: {point.name} = {seen}")
        if clock.monotonic() >= deadline:
            return CommandResult("timeout", f"{command} sent, but {point.name} is {seen}, not {values}")
        await asyncio.sleep(0.2)


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
        except DriverError as exc:
            return _failed(exc, f"the controller refused {command}")
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
        return await confirm_state(
            self.endpoint, self.unit_id, self.profile, command, point, proof.values,
            self.control.confirm_within, self.clock,
        )  # fmt: skip


class PulseCommander:
    """Relay commands (a barrier's open contact): coil ON, hold `seconds`, coil OFF, confirm.

    The OFF is written even when the wait is cancelled: a relay left closed holds a barrier arm up.
    """

    def __init__(self, profile: ModbusProfile, endpoint: ModbusEndpoint, unit_id: int, clock: Clock) -> None:
        self.profile, self.endpoint, self.unit_id, self.clock = profile, endpoint, unit_id, clock

    @property
    def commands(self) -> list[str]:
        return sorted(self.profile.pulses)

    async def execute(self, command: str) -> CommandResult:
        pulse = self.profile.pulses.get(command)
        if pulse is None:
            return CommandResult("refused", f"{command!r} is not a command of profile {self.profile.name}")
        try:
            await self.endpoint.write_coil(pulse.coil, True, self.unit_id)
        except DriverError as exc:
            return _failed(exc, f"the module refused {command}")
        try:
            await asyncio.sleep(pulse.seconds)
        finally:  # also when cancelled: a relay left closed holds the barrier arm up
            stuck = await self._switch_off(pulse)
        if stuck is not None:
            return CommandResult("failed", f"relay {pulse.coil} may still be closed: {stuck}")
        if pulse.confirm is None:
            return CommandResult("ok", f"{command}: relay pulsed {pulse.seconds:g} s (nothing to confirm it)")
        point = next(p for p in self.profile.points if p.name == pulse.confirm.point)  # checked at load
        return await confirm_state(
            self.endpoint, self.unit_id, self.profile, command, point, pulse.confirm.values,
            pulse.confirm_within, self.clock,
        )  # fmt: skip

    async def _switch_off(self, pulse: CoilPulse) -> str | None:
        """Write OFF (retried once); returns the error when both attempts failed."""
        error = ""
        for _ in range(2):
            try:
                await asyncio.shield(self.endpoint.write_coil(pulse.coil, False, self.unit_id))
                return None
            except DriverError as exc:
                error = str(exc)
        return error


class RegisterCommander:
    """Register commands (a fire panel's silence or reset): one value to one holding register, then
    read back the state that proves it worked, where the profile names one."""

    def __init__(self, profile: ModbusProfile, endpoint: ModbusEndpoint, unit_id: int, clock: Clock) -> None:
        self.profile, self.endpoint, self.unit_id, self.clock = profile, endpoint, unit_id, clock

    @property
    def commands(self) -> list[str]:
        return sorted(self.profile.writes)

    async def execute(self, command: str) -> CommandResult:
        write = self.profile.writes.get(command)
        if write is None:
            return CommandResult("refused", f"{command!r} is not a command of profile {self.profile.name}")
        try:
            await self.endpoint.write_registers(write.address, [write.value], self.unit_id)
        except DriverError as exc:
            return _failed(exc, f"the device refused {command}")
        if write.confirm is None:
            return CommandResult("ok", f"{command}: {write.value} written to register {write.address}")
        point = next(p for p in self.profile.points if p.name == write.confirm.point)  # checked at load
        return await confirm_state(
            self.endpoint, self.unit_id, self.profile, command, point, write.confirm.values,
            write.confirm_within, self.clock,
        )  # fmt: skip
