"""A Modbus relay board (siren, strobe, PA trigger), as the simulator plays it over real Modbus TCP.

Coils are relays; each ON edge is a pulse, kept with its start and end (monotonic) so a test or the demo
can ask "did the siren sound, and for how long". Writing an address beyond the board's relays is refused
with exception 2, as the real boards do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drivers.profiles import ModbusProfile
from drivers.sim.modbus_server import DeviceFault


@dataclass
class RelayPulse:
    coil: int
    started: float
    ended: float | None = None


class RelayBoardModel:
    def __init__(self, profile: ModbusProfile, clock: Callable[[], float] = time.monotonic) -> None:
        self.profile, self.clock = profile, clock
        self.fault = DeviceFault()
        self.coils = {p.address: False for p in profile.points if p.table == "coil"}
        self.inputs = {p.address: False for p in profile.points if p.table == "discrete"}
        self.pulses: list[RelayPulse] = []  # every ON edge, oldest first (bounded below)

    def coil_of(self, command: str) -> int:
        return self.profile.pulses[command].coil

    def pulse_count(self, command: str) -> int:
        coil = self.coil_of(command)
        return sum(1 for p in self.pulses if p.coil == coil)

    # -- RegisterModel / BitModel ------------------------------------------------------------------
    def registers(self) -> dict[int, int]:
        return {}

    def write(self, address: int, values: list[int]) -> int | None:
        return 2  # no holding registers on a relay board

    def bits(self, table: Literal["coil", "discrete"], address: int, count: int) -> list[bool]:
        source = self.coils if table == "coil" else self.inputs
        return [source.get(address + i, False) for i in range(count)]

    def write_bits(self, address: int, values: list[bool]) -> int | None:
        if any(address + i not in self.coils for i in range(len(values))):
            return 2
        now = self.clock()
        for i, value in enumerate(values):
            coil = address + i
            if value and not self.coils[coil]:
                self.pulses.append(RelayPulse(coil, now))
                del self.pulses[:-1000]
            elif not value and self.coils[coil]:
                for pulse in reversed(self.pulses):
                    if pulse.coil == coil and pulse.ended is None:
                        pulse.ended = now
                        break
            self.coils[coil] = value
        return None
