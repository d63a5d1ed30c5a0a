"""Checks of devices' `mqtt` sections that need other devices or the profile, run by `bind_devices`.

Shared topics: Frigate publishes every camera's updates on one topic, uhppoted-mqtt every controller's
events. The ingress tells such devices apart by payload fields (`mqtt.match`), so on a shared filter
every device needs a match, on the same paths, with values no other device has; otherwise a message
would be decoded for the wrong device, or for none.

Template vars: a device's `mqtt.vars` fill its profile's command templates; a name no template uses is a
typo that would silently leave the default (door 1) in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.payload_match import as_text
from drivers.profiles import MqttProfile
from gateway.config import ConfigIssue, DeviceConfig, GatewayConfig
from gateway.config.loader import PathKey

__all__ = ["shared_topic_issues", "unknown_vars"]


@dataclass(frozen=True)
class _Member:
    path: PathKey  # of the device's mqtt section
    name: str  # estate/device
    device: DeviceConfig


def shared_topic_issues(config: GatewayConfig, filename: str, lines: dict[PathKey, int]) -> list[ConfigIssue]:
    by_topic: dict[str, list[_Member]] = {}
    for e, estate in enumerate(config.estates):
        for d, device in enumerate(estate.devices):
            if device.mqtt is not None:
                member = _Member(("estates", e, "devices", d, "mqtt"), f"{estate.id}/{device.id}", device)
                by_topic.setdefault(device.mqtt.topic, []).append(member)
    issues: list[ConfigIssue] = []
    for topic, members in by_topic.items():
        if len(members) > 1:
            issues += [
                ConfigIssue(filename, lines.get(path, lines.get(path[:-1])), _dotted(path), message)
                for path, message in _shared(topic, members)
            ]
    return issues


def _shared(topic: str, members: list[_Member]) -> list[tuple[PathKey, str]]:
    problems: list[tuple[PathKey, str]] = []
    paths: tuple[str, ...] | None = None
    claimed: dict[tuple[str | None, ...], str] = {}
    for member in members:
        match = member.device.mqtt.match if member.device.mqtt else None
        others = ", ".join(m.name for m in members if m is not member)
        if not match:
            problems.append(
                (
                    member.path,
                    f"shares topic {topic!r} with {others}: give each a 'match' that tells them apart",
                )
            )
            continue
        mine = tuple(sorted(match))
        paths = paths or mine
        key = tuple(as_text(match[p]) for p in mine)
        if mine != paths:
            problems.append(
                (
                    (*member.path, "match"),
                    f"matches on {list(mine)}, other devices on {topic!r} on {list(paths)}",
                )
            )
        elif key in claimed:
            problems.append(((*member.path, "match"), f"same match as {claimed[key]} on topic {topic!r}"))
        else:
            claimed[key] = member.name
    return problems


def unknown_vars(profile: MqttProfile, device: DeviceConfig) -> list[str]:
    """Names in the device's mqtt.vars that none of the profile's command templates uses."""
    if device.mqtt is None:
        return []
    used = {name for command in profile.commands.values() for name in command.fields}
    return sorted(set(device.mqtt.vars) - used)


def _dotted(loc: PathKey) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
