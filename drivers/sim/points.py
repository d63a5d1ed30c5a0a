"""A plain register-map device: holds engineering values by point name and encodes them through its
profile. Plays fire-panel gateways, pressure transmitters, I/O modules and simple generator controllers
in the simulator.

Values are what the gateway should decode: a number, an enum label, a bool for a `bit` point, a label
(or a number) for a `bits` field; a `decimals_from` point is encoded with the decimal places its
decimals point holds in `values`. `raw` overrides registers after encoding (a sentinel, garbage).
"""

from __future__ import annotations

from typing import Literal

from drivers.profiles import ModbusPoint, ModbusProfile
from drivers.registers import encode_value
from drivers.sim.modbus_server import DeviceFault

SimValue = float | int | bool | str


class PointsModel:
    def __init__(self, profile: ModbusProfile, values: dict[str, SimValue] | None = None) -> None:
        self.profile = profile
        self.fault = DeviceFault()
        self.values: dict[str, SimValue] = dict(values or {})
        self.raw: dict[int, int] = {}  # explicit register overrides (e.g. a sentinel), by address

    def set(self, name: str, value: SimValue) -> None:
        """Set a point by its name (`L1-D023.fire: true`, `L1-D003.state: disabled`), checked now: a typo in
        a scenario fails at its step instead of leaving the device quietly normal, and a wrong label
        fails here instead of inside the server's read."""
        point = next((p for p in self.profile.points if p.name == name), None)
        if point is None:
            raise ValueError(f"{self.profile.name} has no point {name!r}")
        if isinstance(value, str):
            _code(point, value)
        self.values[name] = value

    def registers(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for point in self.profile.points:
            value = self.values.get(point.name)
            if value is None:
                continue
            if point.bit is not None:
                if value:
                    out[point.address] = out.get(point.address, 0) | (1 << point.bit)
                continue
            number = _code(point, value) if isinstance(value, str) else float(value)
            if point.bits is not None:
                start = point.bits.start
                field = round((number - point.offset) / point.scale) << start
                mask = ((1 << point.bits.width) - 1) << start
                out[point.address] = (out.get(point.address, 0) & ~mask) | (field & mask)
                continue
            words = encode_value(number, point, self.profile.word_order, self._decimals(point))
            for i, word in enumerate(words):
                out[point.address + i] = word
        out.update(self.raw)
        return out

    def _decimals(self, point: ModbusPoint) -> int:
        if point.decimals_from is None:
            return 0
        return int(self.values.get(point.decimals_from, 0))

    def write(self, address: int, values: list[int]) -> int | None:
        for i, value in enumerate(values):
            self.raw[address + i] = value
        return None

    def bits(self, table: Literal["coil", "discrete"], address: int, count: int) -> list[bool]:
        points = [p for p in self.profile.points if p.table == table]
        by_address = {p.address: bool(self.values.get(p.name)) for p in points}
        return [by_address.get(address + i, False) for i in range(count)]

    def write_bits(self, address: int, values: list[bool]) -> int | None:
        coils = {p.address: p.name for p in self.profile.points if p.table == "coil"}
        for i, value in enumerate(values):
            if address + i in coils:
                self.values[coils[address + i]] = value
        return None


def _code(point: ModbusPoint, label: str) -> int:
    for code, name in (point.enum or {}).items():
        if name == label:
            return code
    raise ValueError(f"point {point.name!r} has no enum label {label!r}")
