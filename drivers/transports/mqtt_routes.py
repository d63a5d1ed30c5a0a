"""MQTT routing: which device a message is for, by topic and, on a shared topic, by payload.

Each device's filter without its trailing wildcard is a dict key (`prefix`), so the cost per message is
a few dict look-ups, not a scan over every device. Devices that share one filter (every Frigate camera
publishes on frigate/tracked_object_update) are told apart by payload fields, their config's `match`: a
SharedTopic is one target for the ingress that picks the device by a dict look-up on those fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import topic_matches_sub

from drivers.mqtt_device import MqttJsonDecoder
from drivers.payload_match import as_text, key_of
from drivers.stats import DeviceStats
from drivers.watch import PointWatch

__all__ = ["Route", "SharedTopic", "prefix", "targets"]


@dataclass
class Route:
    topic_filter: str
    decoder: MqttJsonDecoder
    stats: DeviceStats
    match: Mapping[str, object] | None = None  # payload fields that pick this device on a shared filter
    watch: PointWatch | None = None  # fed with every decoded reading (commands wait on it)
    # Precompiled match for the usual "literal/prefix/+" and "literal/prefix/#" filters: levels after the
    # prefix, or -1 for "any" (#). None: the filter has inner wildcards, use paho's general matcher.
    _tail_levels: int | None = None

    def __post_init__(self) -> None:
        levels = self.topic_filter.split("/")
        literal = len(prefix(self.topic_filter).split("/")) if prefix(self.topic_filter) else 0
        tail = levels[literal:]
        if tail == ["#"]:
            self._tail_levels = -1
        elif all(level == "+" for level in tail):
            self._tail_levels = len(tail)

    def matches(self, topic_levels: int, prefix_levels: int, topic: str) -> bool:
        """The topic is already known to start with this route's literal prefix."""
        if self._tail_levels == -1:
            return True
        if self._tail_levels is not None:
            return topic_levels - prefix_levels == self._tail_levels
        return bool(topic_matches_sub(self.topic_filter, topic))


class SharedTopic:
    """Devices on one topic filter, told apart by the same payload paths (their config's `match`)."""

    def __init__(self, routes: list[Route]) -> None:
        self.topic_filter, self.routes = routes[0].topic_filter, routes
        self.paths = tuple(sorted(routes[0].match or {}))
        self.max_payload = max(route.decoder.profile.max_payload for route in routes)
        self._by_key: dict[tuple[str, ...], Route] = {}
        for route in routes:  # the config check says all this first, with file and line
            match = route.match or {}
            key = tuple(as_text(match.get(path)) or "" for path in self.paths)
            if tuple(sorted(match)) != self.paths or key in self._by_key:
                raise ValueError(f"devices on {self.topic_filter!r} need distinct matches on the same paths")
            self._by_key[key] = route

    def matches(self, topic_levels: int, prefix_levels: int, topic: str) -> bool:
        return self.routes[0].matches(topic_levels, prefix_levels, topic)

    def pick(self, data: dict[str, Any]) -> Route | None:
        key = key_of(data, self.paths)
        return None if key is None else self._by_key.get(key)


def targets(routes: list[Route]) -> list[Route | SharedTopic]:
    """One target per filter: the route itself, or a SharedTopic where a device selects by payload."""
    by_filter: dict[str, list[Route]] = {}
    for route in routes:
        by_filter.setdefault(route.topic_filter, []).append(route)
    return [
        group[0] if len(group) == 1 and group[0].match is None else SharedTopic(group)
        for group in by_filter.values()
    ]


def prefix(topic_filter: str) -> str:
    """The literal part of a filter before its first wildcard level."""
    literal = []
    for level in topic_filter.split("/"):
        if level in ("+", "#"):
            break
        literal.append(level)
    return "/".join(literal)
