"""Duty roster: who holds a role at a given moment (DESIGN §5). Pure and clock-free: time is passed in.

    role, at ─▶ the role's shift running at `at` (local wall clock) ─▶ base people (fixed or rotation turn)
              ─▶ overrides of that date ─▶ swaps of that date ─▶ Persons

A shift belongs to the local date it starts on, so 03:00 is still last night's shift. Shift bounds are
wall-clock times turned into epochs per date, so DST days give a 23- or 25-hour "24-hour" duty that still
changes at 08:00 local. Nobody on duty is a normal answer (empty list): the engine falls back to the
control room and says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gateway.config.duty import DutyConfig, PersonConfig, RoleConfig, ShiftWindow
from gateway.escalation.types import Person

__all__ = ["Directory", "Duty", "Roster", "ShiftSpan", "people_finder"]


class Directory:
    """People by id."""

    def __init__(self, people: Iterable[Person]) -> None:
        self._by_id = {p.id: p for p in people}

    @classmethod
    def from_config(cls, people: Iterable[PersonConfig]) -> Directory:
        return cls(Person(p.id, p.name, p.phone, p.email, dict(p.im)) for p in people)

    def get(self, person_id: str) -> Person | None:
        return self._by_id.get(person_id)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._by_id

    def __iter__(self) -> Iterator[Person]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass(frozen=True)
class ShiftSpan:
    """One occurrence of a shift: `name`, from `start` to `end` (epoch s), begun on local date `day`."""

    name: str
    day: dt.date
    start: float
    end: float


@dataclass(frozen=True)
class Duty:
    """Who holds `role` at a moment, in which shift, and why it differs from the plan (`notes`)."""

    role: str
    people: tuple[Person, ...]
    shift: ShiftSpan | None  # None: the role is not staffed at that time of day
    notes: tuple[str, ...] = ()


class Roster:
    """An estate's duty roster (from its DutyConfig) in the estate's timezone."""

    def __init__(self, config: DutyConfig, timezone: str = "Asia/Shanghai") -> None:
        self.config = config
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.directory = Directory.from_config(config.people)

    def roles(self) -> list[str]:
        """The configured roles, in config order (escalation policies may name only these)."""
        return list(self.config.roles)

    def label(self, role: str) -> str | None:
        return self.config.label(role)

    def on_duty(self, role: str, at: float) -> list[Person]:
        """People holding `role` at `at` (epoch s); [] when nobody is (or the role is unknown)."""
        return list(self.duty(role, at).people)

    def duty(self, role: str, at: float) -> Duty:
        """As on_duty, with the shift and any override or swap notes."""
        config = self.config.roles.get(role)
        span = self.shift_at(at, role) if config else None
        if config is None or span is None:
            return Duty(role, (), None)
        ids, notes = self._planned(config, span), []
        for override in self.config.overrides:  # the last matching override wins
            last = override.until or override.date
            if (
                override.role == role
                and override.shift in (None, span.name)
                and override.date <= span.day <= last
            ):
                ids, notes = list(override.people), [override.note or f"override {override.date}"]
        for swap in self.config.swaps:  # swaps apply in order, after overrides
            applies = swap.date == span.day and swap.shift in (None, span.name) and swap.role in (None, role)
            if applies and (swap.a in ids or swap.b in ids):
                exchange = {swap.a: swap.b, swap.b: swap.a}
                ids = [exchange.get(pid, pid) for pid in ids]
                notes.append(swap.note or f"swap {swap.a} ↔ {swap.b}")
        people = [p for p in (self.directory.get(pid) for pid in dict.fromkeys(ids)) if p is not None]
        return Duty(role, tuple(people), span, tuple(notes))

    def shift_at(self, at: float, role: str | None = None) -> ShiftSpan | None:
        """The shift running at `at` for `role` (None: a gap in its cover; if two of its shifts run at
        once, which only a DST change can cause, the later-started one). Without a role: of all shifts
        running, the one ending first (for when anything may change, see next_change)."""
        if role is None:
            names = list(self.config.shifts)
        else:
            config = self.config.roles.get(role)
            names = config.shift_names() if config else []
        running = [span for name in names if (span := self._occurrence(name, at)) is not None]
        if not running:
            return None
        if role is None:
            return min(running, key=lambda s: (s.end, -s.start))
        return max(running, key=lambda s: s.start)

    def next_change(self, at: float) -> float | None:
        """The first shift start or end after `at`: when who is on duty may next change (None: no shifts).
        Overrides and swaps apply per shift, so they change nothing between these moments."""
        day = dt.datetime.fromtimestamp(at, self.tz).date()
        bounds = [
            bound
            for window in self.config.shifts.values()
            for offset in (-1, 0, 1)
            for bound in self._bounds(window, day + dt.timedelta(days=offset))
            if bound > at
        ]
        return min(bounds, default=None)

    def _occurrence(self, name: str, at: float) -> ShiftSpan | None:
        window = self.config.shifts[name]
        today = dt.datetime.fromtimestamp(at, self.tz).date()
        for day in (today, today - dt.timedelta(days=1)):  # a shift lasts at most a day
            start, end = self._bounds(window, day)
            if start <= at < end:
                return ShiftSpan(name, day, start, end)
        return None

    def _bounds(self, window: ShiftWindow, day: dt.date) -> tuple[float, float]:
        """Epoch start and end of the shift begun on local date `day`. Both are wall-clock times: adding
        a timedelta to an aware datetime moves its wall clock, and the zone's offset for that wall time
        is looked up by timestamp()."""
        midnight = dt.datetime.combine(day, dt.time(), self.tz)
        start = midnight + dt.timedelta(minutes=window.start)
        end = midnight + dt.timedelta(minutes=window.start + window.minutes)
        return start.timestamp(), end.timestamp()

    def _planned(self, config: RoleConfig, span: ShiftSpan) -> list[str]:
        if config.shifts is not None:
            return list(config.shifts.get(span.name, []))
        if not config.rotation or config.starting is None:
            return []  # validated away; kept for the type checker
        turn = config.rotation[
            ((span.day - config.starting).days // config.every_days) % len(config.rotation)
        ]
        return [turn] if isinstance(turn, str) else list(turn)


def people_finder(rosters: Mapping[str, Roster]) -> Callable[[str, str, float], list[Person]]:
    """The escalation engine's lookup: (estate, role or 'person:<id>', at) → people; [] when the estate,
    role or person is unknown or nobody is on duty."""

    def people_for(estate: str, target: str, at: float) -> list[Person]:
        roster = rosters.get(estate)
        if roster is None:
            return []
        if target.startswith("person:"):
            person = roster.directory.get(target.removeprefix("person:"))
            return [person] if person else []
        return roster.on_duty(target, at)

    return people_for
