"""Composite rules: conditions over several devices of one estate (or one zone of it).

Each term matches (device, point) pairs; the instance keeps, per term, which pairs hold now and since
when (monotonic). It is true when every term has a pair that holds, or, for a single term with
`at_least` N, when N distinct pairs hold and (with `within`) became true within that many seconds of
each other: "two fire points in the same zone within 2 min". Timing beyond that (on-delay: "the barrier
is still closed 30 s after the fire alarm") is the engine's usual delay path.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.alerts.device import DeviceRef
from gateway.alerts.instance import COMPARISONS, RuleInstance
from gateway.config.schema import RuleConfig, TermConfig
from gateway.model import Value


def term_matches(term: TermConfig, value: Value) -> bool:
    if term.values is not None:
        return value in term.values
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    assert term.op is not None and term.limit is not None
    return COMPARISONS[term.op](float(value), term.limit)


@dataclass(eq=False, slots=True)
class CompositeInstance(RuleInstance):
    """A RuleInstance whose condition reads its own per-term state instead of one device's values."""

    pairs: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (device, point) → term indexes
    holding: list[dict[tuple[str, str], float]] = field(default_factory=list)  # per term: pair → since
    labels: dict[tuple[str, str], str] = field(default_factory=dict)  # labelled points, for the message

    def __post_init__(self) -> None:
        self.key = f"{self.estate}/{self.device}/{self.rule.id}"
        self.watched = ()
        self.holding = [{} for _ in self.rule.terms or ()]

    def reset(self) -> None:
        RuleInstance.reset(self)  # slots dataclasses: no zero-argument super()
        self.holding = [{} for _ in self.rule.terms or ()]

    def update(self, device: str, point: str, value: Value, now: float) -> None:
        for index in self.pairs.get((device, point), ()):
            term = (self.rule.terms or [])[index]
            held = self.holding[index]
            if term_matches(term, value):
                held.setdefault((device, point), now)
            else:
                held.pop((device, point), None)

    def condition(self, values: Mapping[str, Value], wall: float) -> bool | None:
        if not self.in_schedule(wall):
            return False
        if self.rule.at_least > 1:
            return self._enough_together(sorted(self.holding[0].values()))
        return all(self.holding)

    def _enough_together(self, since: list[float]) -> bool:
        n, within = self.rule.at_least, self.rule.within
        if len(since) < n:
            return False
        if within is None:
            return True
        return any(since[i + n - 1] - since[i] <= within for i in range(len(since) - n + 1))

    def shown(self) -> str:
        """Which devices/points make it true, for the message."""
        shown = sorted((d, p) for held in self.holding for d, p in held)
        return ", ".join(
            f"{d} {p}" + (f"（{self.labels[(d, p)]}）" if (d, p) in self.labels else "") for d, p in shown
        )


def compile_composite(rule: RuleConfig, devices: Iterable[DeviceRef]) -> list[CompositeInstance]:
    """One instance per estate, or per (estate, zone) with same_zone; only where every term can match.

    With same_zone a pair belongs to its point's zone, so one panel serving two buildings confirms a fire
    per building, not across them."""
    groups: dict[tuple[str, str], dict[tuple[str, str], list[int]]] = {}  # (estate, scope) → pairs
    labels: dict[tuple[str, str], dict[tuple[str, str], str]] = {}  # (estate, scope) → pair → label
    for ref in devices:
        for index, term in enumerate(rule.terms or ()):
            if term.device is not None and term.device not in (ref.device, f"{ref.estate}/{ref.device}"):
                continue
            if term.device is None and term.family != ref.family:
                continue
            for point in fnmatch.filter(ref.points, term.point):
                group = (ref.estate, ref.zone_of(point) if rule.same_zone else "*")
                groups.setdefault(group, {}).setdefault((ref.device, point), []).append(index)
                if ref.location_of(point) != ref.location_of(None):  # the point has its own label
                    labels.setdefault(group, {})[(ref.device, point)] = ref.location_of(point)
    out = []
    for (estate, scope), pairs in groups.items():
        covered = {i for indexes in pairs.values() for i in indexes}
        if len(covered) != len(rule.terms or ()):
            continue
        zone = scope if scope != "*" else ""
        labelled = labels.get((estate, scope), {})
        out.append(
            CompositeInstance(rule, estate, scope, location=zone, zone=zone, pairs=pairs, labels=labelled)
        )
    return out
