"""Time-weighting: how many units of a group are intact, integrated over time.

A group (all devices of an estate, its fire points, its septic sensors, its generators) keeps, for each
unit it has heard of, the reasons that unit is impaired now (offline, an alarm key, not in auto...). The
number of intact and impaired units is piecewise constant; each change closes the interval since the
previous one, so `ok_s` and `bad_s` are unit-seconds. A unit not heard of yet counts as neither: time
before the first word from a device (or while the gateway was down) is not held against the estate.
"""

from __future__ import annotations

from collections.abc import Callable

Spend = Callable[[float, float, dict[str, float]], None]  # (start, end, unit-seconds per name)


class Group:
    """The units of one group in one estate and the running integral of their state."""

    def __init__(self, name: str, spend: Spend) -> None:
        self.name = name
        self._spend = spend
        self.reasons: dict[str, set[str]] = {}
        self._bad = 0
        self._since: float | None = None

    @property
    def ok(self) -> int:
        return len(self.reasons) - self._bad

    @property
    def bad(self) -> int:
        return self._bad

    def settle(self, now: float) -> None:
        """Close the interval since the last change at `now` (called before every change and query)."""
        since = self._since
        if since is not None and now > since and self.reasons:
            self._spend(
                since, now, {f"{self.name}_ok_s": float(self.ok), f"{self.name}_bad_s": float(self._bad)}
            )
        if since is None or now > since:
            self._since = now

    def know(self, unit: str, now: float) -> None:
        """The unit exists and is heard from: from now on its time counts."""
        if unit not in self.reasons:
            self.settle(now)
            self.reasons[unit] = set()

    def set(self, unit: str, reason: str, on: bool, now: float) -> None:
        """Add (on) or remove a reason the unit is impaired."""
        reasons = self.reasons.get(unit)
        if reasons is None:
            self.know(unit, now)
            reasons = self.reasons[unit]
        if on == (reason in reasons):
            return
        self.settle(now)
        was_bad = bool(reasons)
        if on:
            reasons.add(reason)
        else:
            reasons.discard(reason)
        self._bad += int(bool(reasons)) - int(was_bad)

    def impaired(self, unit: str) -> bool:
        return bool(self.reasons.get(unit))
