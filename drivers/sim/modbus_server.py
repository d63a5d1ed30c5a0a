"""pymodbus servers whose unit ids are RegisterModels: Python objects that say what each register
holds *now*, plus fault injection (silent, exception replies, delay) for tests.

Built on pymodbus' SimDevice with an `action` hook: on every request the hook copies the model's
current registers into the server's block (reads) or hands written values to the model (writes).
`ModbusSimServer` serves Modbus TCP, or RTU framing over TCP as an RS-485-to-TCP converter does;
`SerialSimServer` serves RTU on a serial line (a real port, or one end of a pty pair in tests).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal, Protocol

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

log = logging.getLogger(__name__)
BLOCK = 10_000  # registers 0..9999 exist on every simulated unit
FRAMERS = {"socket": FramerType.SOCKET, "rtu": FramerType.RTU}


@dataclass
class DeviceFault:
    """What is wrong with a simulated device right now."""

    silent: bool = False  # never answers (the client times out)
    exception: int | None = None  # answers every request with this Modbus exception code
    # Answers after this many seconds. A reply delayed past the client's timeout behaves like a late
    # RTU reply even over Modbus TCP: pymodbus' server (3.16) stamps it with the transaction id of the
    # newest request on the connection, so the client takes it for that request's answer.
    delay: float = 0.0


class RegisterModel(Protocol):
    fault: DeviceFault

    def registers(self) -> dict[int, int]:
        """Current holding-register values by 0-based address."""

    def write(self, address: int, values: list[int]) -> int | None:
        """Handle a register write; return a Modbus exception code to refuse it."""


class BitModel(RegisterModel, Protocol):
    """A model that also has coils and discrete inputs (relay / digital-input modules)."""

    def bits(self, table: Literal["coil", "discrete"], address: int, count: int) -> list[bool]:
        """Current values of `count` coils or discrete inputs from `address`."""

    def write_bits(self, address: int, values: list[bool]) -> int | None:
        """Handle a coil write (FC05/FC15); return a Modbus exception code to refuse it."""


BIT_TABLES: dict[int, Literal["coil", "discrete"]] = {1: "coil", 5: "coil", 15: "coil", 2: "discrete"}


def _bit_request(
    model: RegisterModel, function_code: int, start_address: int, address: int, count: int,
    registers: list[int], set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:  # fmt: skip
    """Serve coils/discretes from a BitModel. pymodbus keeps bits packed in the shared register block
    (16 a register, bit 0 first) and slices them from bit `address % 16` of register `address`: we lay the
    model's bits out exactly there before it reads."""
    if not hasattr(model, "bits"):
        return ExcCodes.ILLEGAL_FUNCTION
    bit_model: BitModel = model  # type: ignore[assignment]
    if set_values is not None:
        refused = bit_model.write_bits(address, [bool(v) for v in set_values])
        return ExcCodes(refused) if refused is not None else None
    skip = address % 16
    wanted = bit_model.bits(BIT_TABLES[function_code], address, count * 16 - skip)
    packed = [False] * skip + wanted
    for i in range(count):
        registers[address - start_address + i] = sum(
            1 << b for b, on in enumerate(packed[i * 16 : i * 16 + 16]) if on
        )
    return None


class _SimServer:
    """What every simulated server shares: the units, the request hook, start and stop."""

    _server: ModbusTcpServer | ModbusSerialServer

    def __init__(self, units: dict[int, RegisterModel]) -> None:
        self.units = units
        self.requests = 0

    def _devices(self) -> list[SimDevice]:
        return [
            SimDevice(
                id=unit,
                simdata=[SimData(0, count=BLOCK, values=0, datatype=DataType.REGISTERS)],
                action=self._action_for(model),
            )
            for unit, model in self.units.items()
        ]

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
            if function_code in BIT_TABLES:
                return _bit_request(
                    model, function_code, start_address, address, count, registers, set_values
                )
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


class ModbusSimServer(_SimServer):
    """Serves one or more RegisterModels (one per unit id) on host:port.

    `framer="rtu"` sends RTU frames over the TCP connection, as a transparent RS-485 converter does.
    """

    def __init__(
        self,
        host: str,
        port: int,
        units: dict[int, RegisterModel],
        framer: Literal["socket", "rtu"] = "socket",
    ) -> None:
        super().__init__(units)
        self.host, self.port, self.framer = host, port, framer
        self._server = ModbusTcpServer(self._devices(), address=(host, port), framer=FRAMERS[framer])


class SerialSimServer(_SimServer):
    """Serves RegisterModels as RTU slaves on a serial device (needs pyserial)."""

    def __init__(self, device: str, units: dict[int, RegisterModel], baudrate: int = 9600) -> None:
        super().__init__(units)
        self.device, self.baudrate = device, baudrate
        self._server = ModbusSerialServer(
            self._devices(), port=device, baudrate=baudrate, framer=FramerType.RTU
        )
