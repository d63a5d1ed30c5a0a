"""A fire panel's register map that also obeys the panel commands of its profile (`writes`).

Silence sets what the profile reads as proof (the silenced flag); a reset clears the latched fire and
pre-alarm indications and the silence, as a real panel does when the causes are gone: a detector still
in smoke would latch again at once (a scenario sets it again). Other writes are kept as raw registers,
like any register-map device.
"""

from __future__ import annotations

from drivers.profiles import ModbusProfile
from drivers.sim.points import PointsModel, SimValue

__all__ = ["FirePanelModel"]

LATCHED = (".fire", ".pre_alarm")


class FirePanelModel(PointsModel):
    def __init__(self, profile: ModbusProfile, values: dict[str, SimValue] | None = None) -> None:
        super().__init__(profile, values)
        self.commands: list[str] = []  # every panel command obeyed, in order (tests read it)

    def write(self, address: int, values: list[int]) -> int | None:
        for name, command in self.profile.writes.items():
            if command.address == address and values == [command.value]:
                self.obey(name)
                return None
        return super().write(address, values)

    def obey(self, name: str) -> None:
        self.commands.append(name)
        command = self.profile.writes[name]
        if name == "reset":
            for point in self.profile.points:
                if point.name.endswith(LATCHED) or point.name.endswith(".silenced"):
                    self.values[point.name] = False
        if command.confirm is not None:
            self.values[command.confirm.point] = command.confirm.values[0]
