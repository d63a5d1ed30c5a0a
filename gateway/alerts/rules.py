"""Rule kinds and their per-device instances.

A RuleConfig (family- or device-wide) is compiled into one RuleInstance per matching device. An
instance answers one question, `condition(values)`: True (alarm condition), False (clear condition), or
None (hold: inside the deadband, guard point unknown, bad data). Timing (on/off delay) is the engine's.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import TypeAdapter
from ruamel.yaml import YAML

from gateway.config.schema import RuleConfig
from gateway.model import Priority, Value

DEFAULTS = Path(__file__).with_name("defaults.yaml")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def load_default_rules() -> list[RuleConfig]:
    """The per-family default rules shipped with the gateway."""
    data = YAML(typ="safe").load(DEFAULTS.read_text(encoding="utf-8"))
    return TypeAdapter(list[RuleConfig]).validate_python(data)


def merge_rules(defaults: Iterable[RuleConfig], site: Iterable[RuleConfig]) -> list[RuleConfig]:
    """Site rules replace defaults with the same id and add the rest; disabled ones drop out."""
    merged = {rule.id: rule for rule in defaults}
    for rule in site:
        merged[rule.id] = rule
    return [rule for rule in merged.values() if rule.enabled]


@dataclass(frozen=True, slots=True)
class Transition:
    """An alarm became active or returned to normal."""

    key: str
    estate: str
    device: str
    rule: str
    priority: Priority
    active: bool
    ts: float
    value: Value | None
    message_zh: str
    message_en: str


@dataclass(eq=False, slots=True)
class RuleInstance:
    """One rule on one device, with its timing state."""

    rule: RuleConfig
    estate: str
    device: str
    location: str
    point: str | None = None  # the rule's point, or the profile point a glob rule matched
    key: str = ""
    active: bool = False
    pending_since: float | None = None  # monotonic time the on- or off-delay started
    clear_due: float | None = None  # event rules: monotonic time to return to normal
    watched: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.point is None:
            self.point = self.rule.point
        self.key = f"{self.estate}/{self.device}/{self.rule.id}"
        if self.point != self.rule.point:
            self.key += f"/{self.point}"
        points = [p for p in (self.point, self.rule.when.point if self.rule.when else None) if p]
        if self.rule.kind == "offline":
            points = ["online"]
        self.watched = tuple(points)

    def _guard(self, values: dict[str, Value]) -> bool | None:
        guard = self.rule.when
        if guard is None:
            return True
        if guard.point not in values:
            return None
        value = values[guard.point]
        if guard.is_in is not None and value not in guard.is_in:
            return False
        return not (guard.not_in is not None and value in guard.not_in)

    def condition(self, values: dict[str, Value]) -> bool | None:
        rule = self.rule
        if rule.kind == "offline":
            online = values.get("online")
            return None if online is None else online is False
        guard = self._guard(values)
        if guard is not True:
            return None if guard is None else False
        if self.point is None or self.point not in values:
            return None
        value = values[self.point]
        if rule.kind == "state":
            return value in (rule.values or ())
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        assert rule.op is not None and rule.limit is not None
        if _OPS[rule.op](value, rule.limit):
            return True
        if not self.active or rule.deadband == 0 or rule.op in ("==", "!="):
            return False
        # Inside the deadband an active alarm holds; beyond it, it clears.
        if rule.op in ("<", "<="):
            return None if value < rule.limit + rule.deadband else False
        return None if value > rule.limit - rule.deadband else False

    def transition(
        self, active: bool, ts: float, values: dict[str, Value], value: Value | None = None
    ) -> Transition:
        self.active = active
        self.pending_since = None
        shown = value if value is not None else values.get(self.point or "")
        fill = {
            "device": self.device,
            "location": self.location,
            "point": self.point or "",
            "value": "" if shown is None else shown,
        }
        return Transition(
            self.key,
            self.estate,
            self.device,
            self.rule.id,
            self.rule.priority,
            active,
            ts,
            shown,
            _fill(self.rule.message.zh, fill),
            _fill(self.rule.message.en, fill),
        )


def _fill(template: str, values: Mapping[str, object]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def compile_rules(rules: Iterable[RuleConfig], devices: Iterable[DeviceRef]) -> list[RuleInstance]:
    """One instance per (rule, matching device); a glob point ("*.fire") gives one per matching point."""
    instances = []
    device_list = list(devices)
    for rule in rules:
        for ref in device_list:
            if rule.device is not None:
                if rule.device not in (ref.device, f"{ref.estate}/{ref.device}"):
                    continue
            elif rule.family != ref.family:
                continue
            if rule.point is not None and any(c in rule.point for c in "*?["):
                for point in fnmatch.filter(ref.points, rule.point):
                    instances.append(RuleInstance(rule, ref.estate, ref.device, ref.location, point))
            else:
                instances.append(RuleInstance(rule, ref.estate, ref.device, ref.location))
    return instances


class DeviceRef(Protocol):
    """What rule compilation needs to know of a device."""

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
