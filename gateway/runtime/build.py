"""Bind configured devices to their profiles and transports. Used by `run` and by `check-config`,
so a profile that is missing or does not fit its device is caught before anything starts."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.profiles import (
    AnyProfile,
    HttpPushProfile,
    ModbusProfile,
    MqttProfile,
    ProfileError,
    ProfileLibrary,
)
from gateway.alerts import DeviceInfo, PointPlace
from gateway.config import ConfigIssue, DeviceConfig, GatewayConfig
from gateway.config.loader import PathKey
from gateway.runtime.mqtt_checks import shared_topic_issues, unknown_vars


@dataclass(frozen=True)
class BoundDevice:
    estate: str
    config: DeviceConfig
    profile: AnyProfile
    timezone: str = "Asia/Shanghai"
    gate_hours: str = "06:00-23:00"
    holidays: tuple[str, ...] = ()
    holiday_gate_hours: str | None = None

    @property
    def info(self) -> DeviceInfo:
        timeout = self.config.heartbeat_timeout if self.config.mqtt is not None else None
        return DeviceInfo(
            self.estate, self.config.id, self.config.family.value, self.config.location, timeout, self.points,
            self.timezone, self.gate_hours, self.config.zone, self.holidays, self.holiday_gate_hours,
            places=self.places,
        )  # fmt: skip

    @property
    def places(self) -> dict[str, PointPlace]:
        """Points the profile labels or zones (a fire panel's site table); others are where the device is."""
        if not isinstance(self.profile, ModbusProfile):
            return {}
        return {p.name: PointPlace(p.label, p.zone) for p in self.profile.points if p.label or p.zone}

    @property
    def points(self) -> tuple[str, ...]:
        profile = self.profile
        if isinstance(profile, ModbusProfile):
            names = [p.name for p in profile.points] + list(profile.derived)
            if profile.alarm_nibbles:
                names += [f"alarm.{n}" for n in profile.alarm_nibbles.names]
            return (*names, "online")
        if isinstance(profile, HttpPushProfile):
            return ("online",)  # a pushing camera sends events only
        names = [n for c in profile.channels.values() if c.type == "state" for n in c.points]
        return (*names, "online")


def bind_devices(
    config: GatewayConfig, filename: str = "config", lines: dict[PathKey, int] | None = None
) -> tuple[list[BoundDevice], list[ConfigIssue]]:
    library = ProfileLibrary(config.profile_dirs)
    bound: list[BoundDevice] = []
    issues: list[ConfigIssue] = []
    lines = lines or {}
    for e, estate in enumerate(config.estates):
        for d, device in enumerate(estate.devices):
            path: PathKey = ("estates", e, "devices", d, "profile")
            where = f"estates[{e}].devices[{d}].profile"

            def problem(message: str, path: PathKey = path, where: str = where) -> None:
                issues.append(ConfigIssue(filename, lines.get(path), where, message))

            try:
                profile = library.get(device.profile)
            except ProfileError as exc:
                problem(str(exc))
                continue
            if profile.family != device.family:
                problem(
                    f"profile {profile.name!r} is for {profile.family.value}, device is {device.family.value}"
                )
            elif isinstance(profile, ModbusProfile) and device.modbus is None:
                problem(f"profile {profile.name!r} speaks Modbus; give the device a 'modbus' section")
            elif isinstance(profile, MqttProfile) and device.mqtt is None:
                problem(f"profile {profile.name!r} speaks MQTT; give the device an 'mqtt' section")
            elif isinstance(profile, HttpPushProfile) and device.http_push is None:
                problem(f"profile {profile.name!r} is a pushing camera: give the device 'http_push'")
            elif device.barrier is not None and not _is_relay(library, estate.devices, device.barrier):
                problem(
                    f"barrier {device.barrier!r} is not a device whose profile has an 'open' pulse",
                    ("estates", e, "devices", d, "barrier"),
                    f"estates[{e}].devices[{d}].barrier",
                )
            elif unknown := sorted(set(device.commands) - set(_commands_of(profile))):
                problem(
                    f"commands {unknown} are not in profile {profile.name!r} "
                    f"(it has: {', '.join(_commands_of(profile)) or 'none'})",
                    ("estates", e, "devices", d, "commands"),
                    f"estates[{e}].devices[{d}].commands",
                )
            elif isinstance(profile, MqttProfile) and (names := unknown_vars(profile, device)):
                problem(
                    f"vars {names} are not used by the commands of profile {profile.name!r}",
                    ("estates", e, "devices", d, "mqtt", "vars"),
                    f"estates[{e}].devices[{d}].mqtt.vars",
                )
            else:
                holidays = tuple(day.isoformat() for day in estate.holidays)
                bound.append(
                    BoundDevice(
                        estate.id,
                        device,
                        profile,
                        estate.timezone,
                        estate.gate_hours,
                        holidays,
                        estate.holiday_gate_hours,
                    )
                )
    issues += shared_topic_issues(config, filename, lines)
    return bound, issues


def _commands_of(profile: AnyProfile) -> list[str]:
    if isinstance(profile, MqttProfile):
        return sorted(profile.commands)
    if not isinstance(profile, ModbusProfile):
        return []
    return sorted({*(profile.control.keys if profile.control else ()), *profile.pulses, *profile.writes})


def _is_relay(library: ProfileLibrary, devices: list[DeviceConfig], device_id: str) -> bool:
    device = next((d for d in devices if d.id == device_id), None)
    try:
        profile = library.get(device.profile) if device is not None else None
    except ProfileError:
        return False  # reported on that device itself
    return isinstance(profile, ModbusProfile) and "open" in profile.pulses
