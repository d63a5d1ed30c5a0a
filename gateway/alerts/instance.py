"""One rule on one device (or one point of it), with the state its kind needs.

`condition(values, wall)` answers True (alarm condition), False (clear condition) or None (hold: inside
the deadband, guard point unknown, bad data, not enough history). The engine owns timing (delays, ticks);
an instance owns what its kind remembers: sample history (rate), hit windows (count), activation times
(chattering).
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.alerts.schedule import GateHours
from gateway.config.schema import ConditionConfig, RuleConfig
from gateway.model import Priority, Value

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Transition:
    """An alarm became active or returned to normal (reason: '' | 'suppressed')."""

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
    latch: bool = False
    chattering: bool = False
    reason: str = ""
    zone: str = ""
    first_out: bool = False  # the rule takes part in first-out tracking (fire sequences)


def holds(condition: ConditionConfig, values: Mapping[str, Value]) -> bool | None:
    """Does a point condition hold? None when the point has no value yet."""
    if condition.point not in values:
        return None
    value = values[condition.point]
    if condition.is_in is not None and value not in condition.is_in:
        return False
    return not (condition.not_in is not None and value in condition.not_in)


@dataclass(eq=False, slots=True)
class RuleInstance:
    rule: RuleConfig
    estate: str
    device: str
    location: str
    point: str | None = None  # the rule's point, or the profile point a glob rule matched
    hours: GateHours | None = None  # the estate's gate hours, for schedule-aware rules
    zone: str = ""
    key: str = ""
    active: bool = False
    suppressed: bool = False
    pending_since: float | None = None  # monotonic time the on- or off-delay started
    clear_due: float | None = None  # event and count rules: monotonic time to re-check or clear
    watched: tuple[str, ...] = ()
    # Made on first use: an empty deque is 760 bytes, and 10,000 devices have ~100,000 instances whose
    # rules are neither rate rules nor ever active (issue 9: RSS at 10k devices).
    history: deque[tuple[float, float]] | None = None  # rate: (monotonic, value)
    hits: dict[str, deque[float]] = field(default_factory=dict)  # count: group → monotonic times
    activations: deque[float] | None = None  # chattering: monotonic times
    chattering: bool = False

    def __post_init__(self) -> None:
        rule = self.rule
        if self.point is None:
            self.point = rule.point
        self.key = f"{self.estate}/{self.device}/{rule.id}"
        if self.point != rule.point:
            self.key += f"/{self.point}"
        if rule.kind == "offline":
            self.watched = ("online",)
        else:
            guards = [c.point for c in (rule.when, rule.suppress_when) if c is not None]
            self.watched = tuple(p for p in (self.point, *guards) if p)

    def reset(self) -> None:
        """Back to a fresh instance (its estate moved between gateway instances; the store has the rest)."""
        self.active = self.suppressed = self.chattering = False
        self.pending_since = self.clear_due = None
        self.history = self.activations = None
        self.hits.clear()

    # -- conditions ------------------------------------------------------------------------------
    def in_schedule(self, wall: float) -> bool:
        if self.rule.schedule == "always" or self.hours is None:
            return True
        inside = self.hours.inside(wall)
        return inside if self.rule.schedule == "inside_gate_hours" else not inside

    def condition(self, values: Mapping[str, Value], wall: float) -> bool | None:
        rule = self.rule
        self.suppressed = bool(rule.suppress_when and holds(rule.suppress_when, values))
        if self.suppressed or not self.in_schedule(wall):
            return False
        if rule.kind == "offline":
            online = values.get("online")
            return None if online is None else online is False
        if rule.when is not None:
            guard = holds(rule.when, values)
            if guard is not True:
                return None if guard is None else False
        if rule.kind == "rate":
            return self._rate_condition()
        if self.point is None or self.point not in values:
            return None
        value = values[self.point]
        if rule.kind == "state":
            return value in (rule.values or ())
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return self._threshold(float(value))

    def _threshold(self, value: float) -> bool | None:
        rule = self.rule
        assert rule.op is not None and rule.limit is not None
        if COMPARISONS[rule.op](value, rule.limit):
            return True
        if not self.active or rule.deadband == 0 or rule.op in ("==", "!="):
            return False
        # Inside the deadband an active alarm holds; beyond it, it clears.
        if rule.op in ("<", "<="):
            return None if value < rule.limit + rule.deadband else False
        return None if value > rule.limit - rule.deadband else False

    # -- rate of change --------------------------------------------------------------------------
    def observe(self, value: Value, now: float) -> None:
        """Remember a sample for a rate rule (numbers only; the window bounds the memory)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        window = self.rule.window or 60.0
        history = self.history if self.history is not None else deque()
        self.history = history
        history.append((now, float(value)))
        while history and now - history[0][0] > window:
            history.popleft()

    def rate_per_minute(self) -> float | None:
        if self.history is None or len(self.history) < 2:
            return None
        (t0, v0), (t1, v1) = self.history[0], self.history[-1]
        span = t1 - t0
        if span < (self.rule.window or 60.0) / 2:  # too little history to call it a trend
            return None
        return (v1 - v0) / span * 60.0

    def _rate_condition(self) -> bool | None:
        rate = self.rate_per_minute()
        if rate is None:
            return None
        assert self.rule.op is not None and self.rule.limit is not None
        return COMPARISONS[self.rule.op](rate, self.rule.limit)

    # -- event counts ----------------------------------------------------------------------------
    def hit(self, group: str, now: float) -> int:
        """Count an event in its group's sliding window; returns the group's count now."""
        times = self.hits.setdefault(group, deque())
        times.append(now)
        return self.expire(now, group)

    def expire(self, now: float, group: str | None = None) -> int:
        """Drop hits older than the window; returns the largest (or the given group's) count."""
        window = self.rule.window or 60.0
        largest = 0
        for name in list(self.hits):
            times = self.hits[name]
            while times and now - times[0] > window:
                times.popleft()
            if not times:
                del self.hits[name]
            largest = max(largest, len(times))
        return len(self.hits.get(group, ())) if group is not None else largest

    # -- transitions -----------------------------------------------------------------------------
    def transition(
        self, active: bool, ts: float, now: float, values: Mapping[str, Value], value: Value | None = None
    ) -> Transition:
        self.active = active
        self.pending_since = None
        newly_chattering = active and self._note_activation(now)
        shown = value if value is not None else values.get(self.point or "")
        fill = {
            "device": self.device,
            "location": self.location,
            "point": self.point or "",
            "value": "" if shown is None else shown,
        }
        return Transition(
            self.key, self.estate, self.device, self.rule.id, self.rule.priority, active, ts, shown,
            _fill(self.rule.message.zh, fill), _fill(self.rule.message.en, fill),
            latch=self.rule.latch, chattering=newly_chattering,
            reason="suppressed" if (not active and self.suppressed) else "", zone=self.zone,
            first_out=self.rule.first_out,
        )  # fmt: skip

    def _note_activation(self, now: float) -> bool:
        """Record an activation; True the first time the alarm counts as chattering (ISA-18.2)."""
        if not self.rule.chatter_count:
            return False
        activations = self.activations if self.activations is not None else deque()
        self.activations = activations
        activations.append(now)
        while activations and now - activations[0] > self.rule.chatter_window:
            activations.popleft()
        if len(activations) >= self.rule.chatter_count and not self.chattering:
            self.chattering = True
            return True
        if len(activations) < self.rule.chatter_count:
            self.chattering = False
        return False


def _fill(template: str, values: Mapping[str, object]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template
