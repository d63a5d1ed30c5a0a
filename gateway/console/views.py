"""What the console pages show, assembled from the parts the API reads (store, engine, rings, rosters).

Everything here takes the caller's Principal and asks the store for that scope only: the browser never
receives data it then hides. Times are formatted in the estate's timezone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.alerts import DeviceInfo
from gateway.api.auth import Principal
from gateway.api.context import ApiContext
from gateway.api.incidents import scope
from gateway.api.schemas import incident_out
from gateway.console.facilities import FacilityStatus, check_facilities
from gateway.console.i18n import Translator
from gateway.console.recent import Sample
from gateway.model import Incident, IncidentState, Priority
from gateway.store import IncidentQuery

__all__ = [
    "ACTIVE",
    "BOARD_STATES",
    "FIRE_FLAGS",
    "HEADLINE",
    "DeviceRow",
    "board_incidents",
    "device_alarms",
    "device_rows",
    "estate_name",
    "facilities",
    "fmt_time",
    "headline",
    "shown_value",
    "tz_of",
]

ACTIVE = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)
BOARD_STATES = ("active", "open", "acknowledged", "resolved", "closed")
BOARD_LIMIT = 500
FAMILIES = ("fire_panel", "generator", "septic_pressure", "access_gate", "plate_barrier")


def tz_of(ctx: ApiContext, estate: str) -> str:
    return ctx.timezones.get(estate, "Asia/Shanghai")


def fmt_time(ctx: ApiContext, estate: str, ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, ZoneInfo(tz_of(ctx, estate))).strftime(fmt)


def estate_name(ctx: ApiContext, estate: str, t: Translator) -> str:
    names = ctx.estate_names.get(estate)
    if names is None:
        return estate
    return names[1] if t.english else names[0]


def visible_estates(ctx: ApiContext, user: Principal) -> list[str]:
    known = list(ctx.estate_names) or sorted({d.estate for d in ctx.devices})
    return [e for e in known if user.can_see(e)]


async def board_incidents(ctx: ApiContext, user: Principal, estate: str | None, state: str) -> list[Incident]:
    """The board's incidents in the caller's scope, by priority then age (oldest first)."""
    states = ACTIVE if state == "active" else (IncidentState(state),)
    found: list[Incident] = []
    for one in states:
        found += await ctx.service.list(IncidentQuery(scope(user, estate), one, None, BOARD_LIMIT, 0))
    found.sort(key=lambda i: (i.priority.rank, i.opened_at))
    return found


def incidents_json(incidents: list[Incident]) -> list[dict[str, Any]]:
    return [incident_out(i, False).model_dump(mode="json") for i in incidents]


def device_alarms(incidents: list[Incident]) -> dict[tuple[str, str], Priority]:
    """The most urgent active alarm of each device, from the active members of unresolved incidents."""
    out: dict[tuple[str, str], Priority] = {}
    for incident in incidents:
        members = incident.members or {incident.alarm_key: "active" if incident.active else "normal"}
        for key, status in members.items():
            if status == "normal":
                continue
            estate, device = key.split("/", 2)[:2]
            known = out.get((estate, device))
            if known is None or incident.priority.rank < known.rank:
                out[(estate, device)] = incident.priority
    return out


# The points an overview row shows per family (data: vendor profiles that name them otherwise fall back
# to the point that reported last). Fire panels show counts of points in fire, fault, disabled instead.
HEADLINE: dict[str, tuple[str, ...]] = {
    "generator": ("control_mode", "engine_state", "fuel_level"),
    "septic_pressure": ("pressure",),
    "access_gate": ("door_open",),
    "plate_barrier": ("barrier_open", "vehicle_present"),
    "local_output": ("relay1_siren", "relay2_strobe", "relay3_pa"),  # relay_board_8ch: on while pulsed
}
FIRE_FLAGS = ("fire", "fault", "disabled")  # catalog keys fire.<flag>


@dataclass(frozen=True)
class DeviceRow:
    info: DeviceInfo
    state: str  # alarm | offline | online | unknown | out_of_service
    priority: str  # of its most urgent alarm, "" when none
    reading: list[tuple[str, str]]  # (point, or a catalog key "fire.<flag>"; value shown)
    last_time: str
    last_ts: float | None


def shown_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _flag_set(value: object) -> bool:
    return value is True or (isinstance(value, int | float) and value != 0) or value in FIRE_FLAGS


def headline(family: str, latest: dict[str, Sample]) -> list[tuple[str, str]]:
    """What an overview row shows of a device's latest values."""
    if family == "fire_panel":
        counts = dict.fromkeys(FIRE_FLAGS, 0)
        for point, sample in latest.items():
            name, _, flag = point.rpartition(".")
            if flag in counts and _flag_set(sample.value):
                counts[flag] += 1
            elif flag == "state" and name and sample.value in counts:
                counts[str(sample.value)] += 1
        return [(f"fire.{flag}", str(n)) for flag, n in counts.items()]
    shown = [p for p in HEADLINE.get(family, ()) if p in latest]
    if not shown and latest:
        shown = [max(latest, key=lambda p: latest[p].ts)]
    return [(p, shown_value(latest[p].value)) for p in shown]


def device_rows(ctx: ApiContext, estate: str, alarms: dict[tuple[str, str], Priority]) -> list[DeviceRow]:
    rows = []
    infos = sorted(
        (d for d in ctx.devices if d.estate == estate),
        key=lambda d: (FAMILIES.index(d.family) if d.family in FAMILIES else 9, d.device),
    )
    for info in infos:
        online = ctx.online(estate, info.device)
        priority = alarms.get((estate, info.device))
        oos = (estate, info.device) in ctx.service.manager.out_of_service
        state = (
            "out_of_service" if oos else "alarm" if priority else
            "unknown" if online is None else "online" if online else "offline"
        )  # fmt: skip
        latest = ctx.recent.latest(estate, info.device) if ctx.recent else {}
        ts = max((s.ts for s in latest.values()), default=ctx.stats.for_device(estate, info.device).last_seen)
        level = priority.value if priority else ""
        reading = headline(info.family, latest)
        rows.append(DeviceRow(info, state, level, reading, fmt_time(ctx, estate, ts, "%H:%M:%S"), ts))
    return rows


def facilities(ctx: ApiContext, estate: str, alarms: dict[tuple[str, str], Priority]) -> list[FacilityStatus]:
    def values(e: str, d: str) -> dict[str, object]:
        return {p: s.value for p, s in ctx.recent.latest(e, d).items()} if ctx.recent else {}

    return check_facilities(
        (d for d in ctx.devices if d.estate == estate), ctx.online, values,
        lambda e, d: (e, d) in alarms, ctx.rosters.get(estate), time.time(),
    )  # fmt: skip
