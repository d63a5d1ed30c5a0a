"""Points computed from other points of the same poll: `below` (a boolean) and `scale` (a number).

A derived point follows its source's quality: a bad source gives a bad derived point (so a rule on it
holds instead of acting on a stale number); a source not read this poll gives nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drivers.profiles.schema import DerivedBelow, ModbusProfile
from gateway.model import Value


@dataclass(frozen=True, slots=True)
class DerivedValue:
    """A derived point's value this poll; None means bad (its source is bad or not a number)."""

    name: str
    value: Value | None
    unit: str = ""


def derive(profile: ModbusProfile, values: Mapping[str, Value | None]) -> list[DerivedValue]:
    """The derived points of one poll from its point values (None: bad; absent: not read)."""
    out: list[DerivedValue] = []
    for name, rule in profile.derived.items():
        if rule.source not in values:
            continue
        unit = "" if isinstance(rule, DerivedBelow) else rule.unit
        value = values[rule.source]
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(DerivedValue(name, None, unit))
        elif isinstance(rule, DerivedBelow):
            out.append(DerivedValue(name, value < rule.below))
        else:
            out.append(DerivedValue(name, round(value * rule.multiply / rule.divide_by + rule.add, 6), unit))
    return out
