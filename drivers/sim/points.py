"""A plain register-map device: holds engineering values by point name and encodes them through its
profile. Plays fire-panel gateways, pressure transmitters and I/O modules in the simulator."""

from __future__ import annotations

from drivers.profiles import ModbusProfile
from drivers.registers import encode_value
from drivers.sim.modbus_server import DeviceFault


class PointsModel:
    def __init__(
        self, profile: ModbusProfile, values: dict[str, float | int | bool | str] | None = None
    ) -> None:
        self.profile = profile
        self.fault = DeviceFault()
        self.values: dict[str, float | int | bool | str] = dict(values or {})
        self.raw: dict[int, int] = {}  # explicit register overrides (e.g. a sentinel), by address

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
            if isinstance(value, str):
                value = next(code for code, label in (point.enum or {}).items() if label == value)
            for i, word in enumerate(encode_value(float(value), point, self.profile.word_order)):
                out[point.address + i] = word
        out.update(self.raw)
        return out

    def write(self, address: int, values: list[int]) -> int | None:
        for i, value in enumerate(values):
            self.raw[address + i] = value
        return None
