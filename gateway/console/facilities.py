"""六有: the estate facility checklist of the overview page, as data.

Our reading of 六有 (six "haves" a managed estate must show, green or red):
有门禁 access gates online; 有车辆识别道闸 ANPR barriers online; 有消防报警 fire panels online and no
point in fault or disabled; 有化粪池监测 septic sensors healthy (online, no active alarm); 有备用电源
generator in auto and healthy (online, no active alarm); 有值班 someone on duty now per the roster.
An item with no device of its family is red: the estate does not "have" it. A device whose state is not
known yet (no reading since start) is not counted as healthy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.alerts import DeviceInfo
from gateway.escalation.roster import Roster

__all__ = ["FACILITIES", "DeviceHealth", "Facility", "FacilityStatus", "check_facilities", "device_health"]


@dataclass(frozen=True)
class Facility:
    """One checklist item: the devices of `family` must all be healthy (or, family None, the roster)."""

    key: str  # catalog key: facility.<key>
    family: str | None
    bad_flags: tuple[str, ...] = ()  # point suffixes that must not be set (".fault" on a fire point)
    bad_states: tuple[str, ...] = ()  # values a "<point>.state" must not have (GST-style panels)
    required: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # point → allowed values
    no_active_alarm: bool = False


FACILITIES: tuple[Facility, ...] = (
    Facility("access", "access_gate"),
    Facility("anpr", "plate_barrier"),
    Facility("fire", "fire_panel", bad_flags=(".fault", ".disabled"), bad_states=("fault", "disabled")),
    Facility("septic", "septic_pressure", no_active_alarm=True),
    Facility("generator", "generator", required={"control_mode": ("auto",)}, no_active_alarm=True),
    Facility("duty", None),
)


@dataclass(frozen=True)
class DeviceHealth:
    device: str
    ok: bool
    reason: str  # catalog key: reason.<reason> ("" when ok)


@dataclass(frozen=True)
class FacilityStatus:
    key: str
    ok: bool
    devices: list[DeviceHealth]
    reason: str = ""  # catalog key for the item as a whole (no devices, nobody on duty)


def _set(value: object) -> bool:
    return value is True or (isinstance(value, int | float) and not isinstance(value, bool) and value != 0)


def device_health(
    facility: Facility, online: bool | None, values: Mapping[str, object], alarmed: bool
) -> tuple[bool, str]:
    """(ok, reason) of one device against one item's conditions; reason is a catalog key suffix."""
    if online is None:
        return False, "unknown"
    if not online:
        return False, "offline"
    for point, value in values.items():
        if any(point.endswith(flag) for flag in facility.bad_flags) and _set(value):
            return False, "fault" if point.endswith(".fault") else "disabled"
        if point.endswith(".state") and value in facility.bad_states:
            return False, str(value)
    for point, allowed in facility.required.items():
        if values.get(point) not in allowed:
            return False, f"not_{allowed[0]}"
    if facility.no_active_alarm and alarmed:
        return False, "alarm"
    return True, ""


def check_facilities(
    devices: Iterable[DeviceInfo],
    online: Callable[[str, str], bool | None],
    values: Callable[[str, str], Mapping[str, object]],
    alarmed: Callable[[str, str], bool],
    roster: Roster | None,
    now: float,
) -> list[FacilityStatus]:
    """The six items for the devices of one estate."""
    devices = list(devices)
    out: list[FacilityStatus] = []
    for facility in FACILITIES:
        if facility.family is None:
            on_duty = roster is not None and any(roster.on_duty(role, now) for role in roster.roles())
            out.append(FacilityStatus(facility.key, on_duty, [], "" if on_duty else "nobody_on_duty"))
            continue
        health = []
        for info in devices:
            if info.family != facility.family:
                continue
            ok, reason = device_health(
                facility, online(info.estate, info.device), values(info.estate, info.device),
                alarmed(info.estate, info.device),
            )  # fmt: skip
            health.append(DeviceHealth(info.device, ok, reason))
        ok = bool(health) and all(h.ok for h in health)
        out.append(FacilityStatus(facility.key, ok, health, "" if health else "no_devices"))
    return out
