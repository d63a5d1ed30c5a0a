"""A pymodbus TCP server whose unit ids are RegisterModels: Python objects that say what each register
holds *now*, plus fault injection (silent, exception replies) for tests.

Built on pymodbus' SimDevice with an `action` hook: on every request the hook copies the model's
current registers into the server's block (reads) or hands written values to the model (writes).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

log = logging.getLogger(__name__)
BLOCK = 10_000  # registers 0..9999 exist on every simulated unit


@dataclass
class DeviceFault:
    """What is wrong with a simulated device right now."""

    silent: bool = False  # never answers (the client times out)
    exception: int | None = None  # answers every request with this Modbus exception code
    delay: float = 0.0  # answers after this many seconds


class RegisterModel(Protocol):
    fault: DeviceFault

    def registers(self) -> dict[int, int]:
        """Current holding-register values by 0-based address."""

    def write(self, address: int, values: list[int]) -> int | None:
        """Handle a register write; return a Modbus exception code to refuse it."""


class ModbusSimServer:
    """Serves one or more RegisterModels (one per unit id) on host:port."""

    def __init__(self, host: str, port: int, units: dict[int, RegisterModel]) -> None:
        self.host, self.port, self.units = host, port, units
        self.requests = 0
        devices = [
            SimDevice(
                id=unit,
                simdata=[SimData(0, count=BLOCK, values=0, datatype=DataType.REGISTERS)],
                action=self._action_for(model),
            )
            for unit, model in units.items()
        ]
        self._server = ModbusTcpServer(devices, address=(host, port))
        self._task: asyncio.Task[None] | None = None

    def _action_for(self, model: RegisterModel):  # type: ignore[no-untyped-def]
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            self.requests += 1
            fault = model.fault
            if fault.silent:
                await asyncio.sleep(3600)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.exception is not None:
                return ExcCodes(fault.exception)
            if set_values is not None:
                refused = model.write(address, [int(v) for v in set_values])
                return ExcCodes(refused) if refused is not None else None
            current = model.registers()
            for addr in range(address, address + count):
                registers[addr - start_address] = current.get(addr, 0) & 0xFFFF
            return None

        return action

    async def start(self) -> None:
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        await self._server.shutdown()  # type: ignore[no-untyped-call]
