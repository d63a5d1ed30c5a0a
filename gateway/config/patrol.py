"""Guard tours (安全巡逻 / 巡更) in the site file: routes of ordered checkpoints and their schedules.

One optional `patrol:` block per estate::

    patrol:
      routes:
        - id: night-round
          name: {zh: 夜间巡逻, en: Night round}
          schedule: ["every 2h from 22:00 to 06:00"]   # the estate's local time
          tolerance_minutes: 10      # each checkpoint may be punched this much after its expected time
          max_duration_minutes: 45   # after this, the tour is over: checkpoints not punched are missed
          checkpoints:
            - {id: north-gate, name: {zh: 北门, en: North gate}, device: gate-north,
               event: card_granted, match: {card: "P-0001"}, after_minutes: 0}
            - {id: b3-lobby, name: {zh: 3号楼大堂, en: Building 3 lobby}, device: patrol-tags,
               event: patrol_tag, match: {tag: B3-LOBBY}, after_minutes: 15}

A checkpoint is punched by a DeviceEvent the drivers already produce: `card_granted` at an access
reader (match the guard's patrol card, a reader or a door), or `patrol_tag` from a tag reader bridged to
MQTT (profile `mqtt_patrol_tag`). Schedules: `every <N>h|<N>min [from HH:MM to HH:MM]` (starts from
`from`, up to but not including `to`; without a window: round the clock from 00:00) or
`at HH:MM[, HH:MM ...]`.

This module imports nothing from `schema` (schema imports it); `Names` mirrors schema's LocalizedText.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, PlainValidator, WithJsonSchema, model_validator

from gateway.config.text import LocalizedText
from gateway.config.text import Strict as _Strict

__all__ = ["CheckpointConfig", "Names", "PatrolConfig", "RouteConfig", "ScheduleSpec", "parse_schedule"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Ident = Annotated[str, Field(pattern=_ID)]
DAY = 24 * 60


Names = LocalizedText  # a name in Chinese (shown first) and English


@dataclass(frozen=True)
class ScheduleSpec:
    """Local start minutes of the day (0..1439) at which a tour is due, and the text it came from."""

    minutes: tuple[int, ...]
    text: str


_EVERY = re.compile(
    r"every\s+(\d+)\s*(h|min)(?:\s+from\s+(\d{2}):(\d{2})\s+to\s+(\d{2}):(\d{2}))?", re.IGNORECASE
)
_AT = re.compile(r"at\s+(\d{2}:\d{2}(?:\s*,\s*\d{2}:\d{2})*)", re.IGNORECASE)


def _minute(hh: str, mm: str, text: str) -> int:
    h, m = int(hh), int(mm)
    if h > 24 or m > 59 or (h == 24 and m):
        raise ValueError(f"{text!r}: {hh}:{mm} is not a time of day")
    return h * 60 + m


def parse_schedule(value: Any) -> ScheduleSpec:
    """`every 2h from 22:00 to 06:00` → 22:00, 00:00, 02:00, 04:00; `at 09:00, 15:00` → those."""
    if isinstance(value, ScheduleSpec):
        return value
    text = str(value).strip()
    if match := _AT.fullmatch(text):
        times = [t.strip().split(":") for t in match.group(1).split(",")]
        starts = sorted({_minute(hh, mm, text) % DAY for hh, mm in times})
        return ScheduleSpec(tuple(starts), text)
    match = _EVERY.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r}: a schedule looks like 'every 2h from 22:00 to 06:00', 'every 1h' or 'at 09:00, 15:00'"
        )
    step = int(match.group(1)) * (60 if match.group(2).lower() == "h" else 1)
    if not 5 <= step <= DAY:
        raise ValueError(f"{text!r}: the interval must be 5 min .. 24 h")
    if match.group(3) is None:
        start, length = 0, DAY
    else:
        start = _minute(match.group(3), match.group(4), text)
        end = _minute(match.group(5), match.group(6), text)
        length = (end - start) % DAY or DAY
    return ScheduleSpec(tuple(sorted({(start + i) % DAY for i in range(0, length, step)})), text)


Schedule = Annotated[
    ScheduleSpec,
    PlainValidator(parse_schedule),
    WithJsonSchema({"type": "string", "examples": ["every 2h from 22:00 to 06:00", "at 09:00, 15:00"]}),
]


class CheckpointConfig(_Strict):
    """One checkpoint of a route: which device event punches it, and when it is expected."""

    id: Ident = Field(description="Unique within the route")
    name: Names = Field(description="Where it is, as guards and the control room call it")
    device: Ident = Field(description="The reader that punches it: an access gate or a patrol tag reader")
    event: str = Field("card_granted", description="Event kind that punches it: card_granted, patrol_tag ...")
    match: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="Event attributes that must be equal, e.g. {card: P-0001}, {reader: 2} or {tag: B3}; "
        "empty: any such event of the device",
    )
    after_minutes: float = Field(
        0.0, ge=0, le=DAY, description="Expected minutes after the tour's scheduled start"
    )


class RouteConfig(_Strict):
    """A patrol route: ordered checkpoints, when tours are due, and how much lateness is tolerated."""

    id: Ident = Field(description="Route id, unique within the estate (used in alarm keys and URLs)")
    name: Names = Field(description="Route name in Chinese and English")
    schedule: list[Schedule] = Field(
        min_length=1, description="When tours are due, in the estate's local time (several lines add up)"
    )
    tolerance_minutes: float = Field(
        10.0, ge=0, le=240, description="A checkpoint punched later than expected by more than this is late"
    )
    max_duration_minutes: float = Field(
        60.0,
        gt=0,
        le=DAY,
        description="The tour ends this long after its scheduled start: unpunched = missed",
    )
    checkpoints: list[CheckpointConfig] = Field(min_length=1, description="In the order they must be punched")
    match: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="Attributes every punch of this route must carry, e.g. {card: P-0001} (the patrol card)",
    )
    enabled: bool = Field(True, description="False keeps the route in the file without scheduling tours")

    @model_validator(mode="after")
    def _consistent(self) -> RouteConfig:
        ids = [c.id for c in self.checkpoints]
        if len(set(ids)) != len(ids):
            raise ValueError(f"route {self.id}: checkpoint ids appear twice")
        offsets = [c.after_minutes for c in self.checkpoints]
        if offsets != sorted(offsets):
            raise ValueError(f"route {self.id}: checkpoints' after_minutes must not decrease")
        if offsets[-1] + self.tolerance_minutes > self.max_duration_minutes:
            raise ValueError(f"route {self.id}: the last checkpoint's window ends after max_duration_minutes")
        starts = sorted({m for spec in self.schedule for m in spec.minutes})
        gaps = [(b - a) % DAY or DAY for a, b in zip(starts, starts[1:] + starts[:1], strict=True)]
        if min(gaps) < self.max_duration_minutes:
            raise ValueError(f"route {self.id}: tours would overlap (max_duration_minutes > the interval)")
        return self


class PatrolConfig(_Strict):
    """The estate's guard tours (gateway/patrol)."""

    routes: list[RouteConfig] = Field(default_factory=list, description="Patrol routes")
    tick_seconds: float = Field(
        5.0, gt=0, le=300, description="How often due tours and missed checkpoints are checked"
    )

    @model_validator(mode="after")
    def _unique(self) -> PatrolConfig:
        ids = [r.id for r in self.routes]
        if len(set(ids)) != len(ids):
            raise ValueError("patrol route ids appear twice")
        return self

    def devices(self) -> set[str]:
        """Every device a checkpoint names (the estate checks they exist)."""
        return {c.device for r in self.routes for c in r.checkpoints}
