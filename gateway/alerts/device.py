"""What rule compilation needs to know of a device (DeviceInfo satisfies it)."""

from typing import NamedTuple, Protocol


class PointPlace(NamedTuple):
    """Where one point of a device is, when its profile says (a fire panel's site table does): the label
    the control room reads, and the building/zone its alarms correlate on. Empty: the device's own."""

    label: str = ""
    zone: str = ""


class DeviceRef(Protocol):
    @property
    def estate(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def points(self) -> tuple[str, ...]: ...
    @property
    def timezone(self) -> str: ...
    @property
    def gate_hours(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def holidays(self) -> tuple[str, ...]: ...
    @property
    def holiday_gate_hours(self) -> str | None: ...

    def location_of(self, point: str | None) -> str:
        """Where an alarm on `point` (None: on the device) is, as the control room reads it."""

    def zone_of(self, point: str | None) -> str:
        """The zone an alarm on `point` (None: on the device) correlates in."""
