"""A barrier lane behind a Modbus relay / digital-input module, as the simulator plays it.

The arm follows the relay: a pulse on the open coil lifts it (after `travel` seconds the up limit
closes), it stays up `hold_open` seconds after the pulse, or while a vehicle is on the loop, then comes
down. `stuck_open` is the classic field fault: the arm goes up and never comes down (broken spring,
controller in "always open"). State is worked out from the clock whenever the gateway reads, so no
task runs in the background.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from drivers.profiles import ModbusProfile
from drivers.sim.modbus_server import DeviceFault


class BarrierModel:
    def __init__(
        self,
        profile: ModbusProfile,
        clock: Callable[[], float] = time.monotonic,
        travel: float = 0.3,
        hold_open: float = 3.0,
    ) -> None:
        self.profile, self.clock = profile, clock
        self.travel, self.hold_open = travel, hold_open
        self.fault = DeviceFault()
        self.vehicle_present = False
        self.stuck_open = False
        self.pulses = 0  # open pulses seen (ON edges), for tests and the demo
        self._relay = False
        self._opened_at: float | None = None  # when the last pulse started lifting the arm
        by_name = {p.name: p for p in profile.points}
        self._open_coil = profile.pulses["open"].coil
        self._inputs = {by_name[n].address: n for n in ("barrier_open", "barrier_closed", "vehicle_present")}

    def _arm_up(self) -> bool:
        if self._opened_at is None:
            return False
        since = self.clock() - self._opened_at
        if since < self.travel:
            return False
        if self.stuck_open or self.vehicle_present or self._relay or since < self.travel + self.hold_open:
            return True
        self._opened_at = None
        return False

    def state(self) -> dict[str, bool]:
        up = self._arm_up()
        lifting = self._opened_at is not None and not up
        return {
            "barrier_open": up,
            "barrier_closed": not up and not lifting,
            "vehicle_present": self.vehicle_present,
        }

    # -- RegisterModel / BitModel ------------------------------------------------------------------
    def registers(self) -> dict[int, int]:
        return {}

    def write(self, address: int, values: list[int]) -> int | None:
        return 2  # illegal data address: the module has no holding registers

    def bits(self, table: Literal["coil", "discrete"], address: int, count: int) -> list[bool]:
        if table == "coil":
            return [self._relay if address + i == self._open_coil else False for i in range(count)]
        state = self.state()
        return [
            state[self._inputs[address + i]] if address + i in self._inputs else False for i in range(count)
        ]

    def write_bits(self, address: int, values: list[bool]) -> int | None:
        for i, value in enumerate(values):
            if address + i != self._open_coil:
                continue
            if value and not self._relay:
                self.pulses += 1
                if not self._arm_up():
                    self._opened_at = self.clock()
                else:  # already up: a new pulse keeps it up for another hold period
                    self._opened_at = self.clock() - self.travel
            self._relay = value
        return None
