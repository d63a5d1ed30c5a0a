"""Duty rosters in the site file: who is on duty in which role, by shift (DESIGN §5, escalation).

One `duty:` block per estate::

    duty:
      people:
        - {id: li, name: 李明, phone: "+8613800000001"}
      shifts: {day: 08:00-20:00, night: 20:00-08:00, 24h: 08:00-08:00+1}
      roles:
        control_room: {day: [li], night: [zhang]}          # fixed people per shift
        duty_manager:                                       # a rotation over dates
          {rotation: [wang, zhao, sun], every_days: 1, starting: 2026-11-01, shift: 24h}
      overrides:
        - {date: 2027-02-06, until: 2027-02-12, role: duty_manager, people: [chen], note: 春节}
      swaps:
        - {date: 2026-11-03, a: li, b: zhang}

A shift belongs to the local date it starts on: 03:00 on the 4th is the night shift of the 3rd, and
overrides and swaps name that date. Times are wall-clock times in the estate's timezone.

This module imports nothing from `schema` (schema imports it), so the few shared bits are repeated.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "KNOWN_ROLES",
    "DutyConfig",
    "OverrideConfig",
    "PersonConfig",
    "RoleConfig",
    "ShiftWindow",
    "SwapConfig",
]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Ident = Annotated[str, Field(pattern=_ID)]
DAY = 24 * 60

# Roles every estate is expected to have, with their display names. Any other name may be configured.
KNOWN_ROLES: dict[str, str] = {
    "control_room": "控制室值班员",
    "duty_manager": "值班经理",
    "estate_manager": "项目经理",
    "engineer_on_call": "值班工程师",
    "patrol_guard": "巡逻保安",
    "fire_liaison": "消防联络人",
}


@dataclass(frozen=True)
class ShiftWindow:
    """A daily shift in local wall-clock minutes: starts at `start` (0..1439), lasts `minutes` (1..1440)."""

    start: int
    minutes: int
    text: str

    def covers(self) -> set[int]:
        """Minutes of the day (0..1439) inside the shift, wrapping past midnight."""
        return {(self.start + i) % DAY for i in range(self.minutes)}


_SHIFT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)(\+1)?")


def _shift(value: Any) -> ShiftWindow:
    if isinstance(value, ShiftWindow):
        return value
    text = str(value).strip()
    match = _SHIFT.fullmatch(text)
    if not match or (match.group(3) == "24" and match.group(4) != "00"):
        raise ValueError(
            f"{text!r}: a shift looks like HH:MM-HH:MM, e.g. 08:00-20:00, 20:00-08:00 or 08:00-08:00+1"
        )
    start = int(match.group(1)) * 60 + int(match.group(2))
    end = int(match.group(3)) * 60 + int(match.group(4))
    if match.group(5) or end < start:  # '+1', or an end before the start: it ends the next day
        end += DAY
    if end == start:
        raise ValueError(f"{text!r}: shift of zero length (a 24-hour duty is written {text}+1)")
    if end - start > DAY:
        raise ValueError(f"{text!r}: a shift lasts at most 24 hours")
    return ShiftWindow(start, end - start, text)


Shift = Annotated[
    ShiftWindow,
    PlainValidator(_shift),
    WithJsonSchema({"type": "string", "examples": ["08:00-20:00", "20:00-08:00", "08:00-08:00+1"]}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonConfig(_Strict):
    """Someone who can be on duty (escalation.types.Person)."""

    id: Ident = Field(description="Unique within the estate; roles, overrides and swaps name people by it")
    name: str = Field(min_length=1, description="Name as colleagues know it, e.g. 李明")
    phone: str | None = Field(
        None, pattern=r"^\+[1-9]\d{6,14}$", description="E.164 with country code, e.g. +8613800138000"
    )
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$", description="E-mail address")
    im: dict[str, str] = Field(
        default_factory=dict, description="IM channel → the person's user id there, e.g. {dingtalk: '1234'}"
    )

    @field_validator("phone", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML reads +8613800138000 as a number and drops the '+'
            raise ValueError(f'write the number in quotes, e.g. "+{value}"')
        return value


Team = list[Ident]


class RoleConfig(_Strict):
    """Who holds a role: fixed people per shift, or a rotation over dates on one shift.

    The short form `{day: [li], night: [zhang]}` means `{shifts: {day: [li], night: [zhang]}}`."""

    label: str | None = Field(None, description="Display name; the known roles have one (e.g. 值班经理)")
    shifts: dict[Ident, Team] | None = Field(
        None, description="Shift name → people on duty in it, e.g. {day: [li], night: [zhang]}"
    )
    rotation: list[Ident | Team] | None = Field(
        None, description="People (or teams: a list) taking turns, in order, e.g. [wang, zhao, sun]"
    )
    every_days: int = Field(1, ge=1, le=366, description="Rotation: days each turn lasts")
    starting: dt.date | None = Field(None, description="Rotation: date the first in the list is on duty")
    shift: Ident | None = Field(None, description="Rotation: the shift a turn covers, e.g. 24h")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and data and not data.keys() & cls.model_fields.keys():
            return {"shifts": data}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> RoleConfig:
        if (self.shifts is None) == (self.rotation is None):
            raise ValueError("give either a shift map ({day: [li], night: [zhang]}) or 'rotation'")
        if self.rotation is not None:
            if not self.rotation or any(isinstance(turn, list) and not turn for turn in self.rotation):
                raise ValueError("rotation has no people")
            if self.starting is None or self.shift is None:
                raise ValueError("a rotation needs 'starting' (date) and 'shift'")
        elif self.starting is not None or self.shift is not None:
            raise ValueError("'starting' and 'shift' belong to a rotation")
        return self

    def shift_names(self) -> list[str]:
        """The shifts this role is staffed in."""
        if self.shifts is not None:
            return list(self.shifts)
        return [self.shift] if self.shift else []

    def named_people(self) -> list[tuple[str, str]]:
        """(where, person id) for every person the role names, for reference checks."""
        if self.shifts is not None:
            return [(f"{name}[{i}]", pid) for name, team in self.shifts.items() for i, pid in enumerate(team)]
        out = []
        for i, turn in enumerate(self.rotation or []):
            out += [(f"rotation[{i}]", pid) for pid in ([turn] if isinstance(turn, str) else turn)]
        return out


class OverrideConfig(_Strict):
    """On these dates the role is held by these people instead (春节, 国庆, a planned absence)."""

    date: dt.date = Field(description="Local date of the shifts replaced (a shift belongs to its start date)")
    until: dt.date | None = Field(None, description="Last date replaced, inclusive; unset: `date` only")
    role: Ident = Field(description="Role replaced")
    shift: Ident | None = Field(None, description="Only this shift of the role; unset: all its shifts")
    people: Team = Field(description="Who is on duty instead; [] leaves the role unstaffed (fallback)")
    note: str = Field("", description="Why, e.g. 春节值班; shown with the roster")

    @model_validator(mode="after")
    def _range(self) -> OverrideConfig:
        if self.until is not None and self.until < self.date:
            raise ValueError("'until' is before 'date'")
        return self


class SwapConfig(_Strict):
    """Two people exchange places (换班) in the shifts that start on one date."""

    date: dt.date = Field(
        description="Local date of the shifts concerned (a shift belongs to its start date)"
    )
    a: Ident = Field(description="One person")
    b: Ident = Field(description="The other person")
    shift: Ident | None = Field(None, description="Only this shift; unset: every shift starting that date")
    role: Ident | None = Field(None, description="Only this role; unset: every role")
    note: str = Field("", description="Why, e.g. 李明 请假")

    @model_validator(mode="after")
    def _two_people(self) -> SwapConfig:
        if self.a == self.b:
            raise ValueError(f"a swap needs two different people, not {self.a!r} twice")
        return self


class DutyConfig(_Strict):
    """An estate's duty roster: people, named shifts, who holds each role, and dated exceptions."""

    people: list[PersonConfig] = Field(default_factory=list, description="Everyone who can be on duty")
    shifts: dict[Ident, Shift] = Field(
        default_factory=dict,
        description="Shift name → local hours, e.g. day: 08:00-20:00, night: 20:00-08:00 (ends next day), "
        "24h: 08:00-08:00+1",
    )
    roles: dict[Ident, RoleConfig] = Field(
        default_factory=dict,
        description="Role → who holds it; known roles: " + ", ".join(KNOWN_ROLES) + "; other names allowed",
    )
    overrides: list[OverrideConfig] = Field(
        default_factory=list, description="Dated replacements of a role's people (holidays such as 春节)"
    )
    swaps: list[SwapConfig] = Field(default_factory=list, description="Dated exchanges of two people")

    # Field validators run in field order and see the fields before them in `info.data` (absent when
    # those failed, which pydantic reports on their own); a problem is reported on the field it is in.

    @field_validator("people")
    @classmethod
    def _unique_people(cls, people: list[PersonConfig]) -> list[PersonConfig]:
        ids = [p.id for p in people]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"person ids appear twice: {', '.join(dupes)}")
        return people

    @field_validator("roles")
    @classmethod
    def _roles_refer(cls, roles: dict[str, RoleConfig], info: ValidationInfo) -> dict[str, RoleConfig]:
        shifts: dict[str, ShiftWindow] | None = info.data.get("shifts")
        problems: list[str] = []
        for name, role in roles.items():
            problems += [f"{name}.{where}: {p}" for where, p in _unknown_people(role.named_people(), info)]
            if shifts is None:
                continue
            unknown = [s for s in role.shift_names() if s not in shifts]
            problems += [f"{name}: unknown shift {s!r} (shifts: {_names(shifts)})" for s in unknown]
            if not unknown:
                problems += [f"{name}: {p}" for p in _overlaps(role.shift_names(), shifts)]
        if problems:
            raise ValueError("; ".join(problems))
        return roles

    @field_validator("overrides")
    @classmethod
    def _overrides_refer(cls, overrides: list[OverrideConfig], info: ValidationInfo) -> list[OverrideConfig]:
        roles: dict[str, RoleConfig] | None = info.data.get("roles")
        problems: list[str] = []
        for i, override in enumerate(overrides):
            named = [(f"people[{j}]", pid) for j, pid in enumerate(override.people)]
            problems += [f"[{i}].{where}: {p}" for where, p in _unknown_people(named, info)]
            if roles is None:
                continue
            role = roles.get(override.role)
            if role is None:
                problems.append(f"[{i}].role: unknown role {override.role!r} (roles: {_names(roles)})")
            elif override.shift is not None and override.shift not in role.shift_names():
                problems.append(
                    f"[{i}].shift: role {override.role} is not staffed in shift {override.shift!r} "
                    f"(its shifts: {', '.join(role.shift_names())})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return overrides

    @field_validator("swaps")
    @classmethod
    def _swaps_refer(cls, swaps: list[SwapConfig], info: ValidationInfo) -> list[SwapConfig]:
        roles: dict[str, RoleConfig] | None = info.data.get("roles")
        shifts: dict[str, ShiftWindow] | None = info.data.get("shifts")
        problems: list[str] = []
        for i, swap in enumerate(swaps):
            problems += [f"[{i}].{w}: {p}" for w, p in _unknown_people([("a", swap.a), ("b", swap.b)], info)]
            if shifts is not None and swap.shift is not None and swap.shift not in shifts:
                problems.append(f"[{i}].shift: unknown shift {swap.shift!r} (shifts: {_names(shifts)})")
            if roles is not None and swap.role is not None and swap.role not in roles:
                problems.append(f"[{i}].role: unknown role {swap.role!r} (roles: {_names(roles)})")
        if problems:
            raise ValueError("; ".join(problems))
        return swaps

    def label(self, role: str) -> str | None:
        """Display name of a role: its configured label, or the known role's."""
        configured = self.roles.get(role)
        return (configured.label if configured else None) or KNOWN_ROLES.get(role)


def _unknown_people(named: list[tuple[str, str]], info: ValidationInfo) -> list[tuple[str, str]]:
    people: list[PersonConfig] | None = info.data.get("people")
    if people is None:
        return []
    known = {p.id for p in people}
    return [
        (where, f"unknown person {pid!r} (people: {', '.join(sorted(known)) or 'none listed'})")
        for where, pid in named
        if pid not in known
    ]


def _overlaps(names: list[str], shifts: dict[str, ShiftWindow]) -> list[str]:
    """Shifts of one role must not overlap: at such a time, who holds the role would be ambiguous."""
    out = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            common = shifts[first].covers() & shifts[second].covers()
            if common:
                at = min(common, key=lambda m: (m - shifts[second].start) % DAY)
                out.append(
                    f"shifts {first} ({shifts[first].text}) and {second} ({shifts[second].text}) overlap "
                    f"(both cover {at // 60:02d}:{at % 60:02d}): who is on duty would be ambiguous"
                )
    return out


def _names(mapping: dict[str, Any]) -> str:
    return ", ".join(mapping) or "none defined"
