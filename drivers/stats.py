"""Per-device counters: what was read, what failed and why. Exposed by the API's /devices and /health."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class DeviceStats:
    """Counters for one device; errors are counted by reason (e.g. 'timeout', 'exception_2', 'bad_json')."""

    readings: int = 0
    events: int = 0
    polls: int = 0
    ignored: int = 0  # messages consumed on purpose (not this channel's, a code that is no event)
    errors: Counter[str] = field(default_factory=Counter)
    last_seen: float | None = None
    online: bool | None = None

    def error(self, reason: str) -> None:
        self.errors[reason] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "readings": self.readings,
            "events": self.events,
            "polls": self.polls,
            "ignored": self.ignored,
            "errors": dict(self.errors),
            "last_seen": self.last_seen,
            "online": self.online,
        }


class StatsRegistry:
    """All device counters of a gateway, keyed by (estate, device)."""

    def __init__(self) -> None:
        self._by_device: dict[tuple[str, str], DeviceStats] = {}

    def for_device(self, estate: str, device: str) -> DeviceStats:
        key = (estate, device)
        stats = self._by_device.get(key)
        if stats is None:
            stats = self._by_device[key] = DeviceStats()
        return stats

    def items(self) -> list[tuple[tuple[str, str], DeviceStats]]:
        return list(self._by_device.items())
