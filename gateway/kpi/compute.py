"""From an accumulated bucket to named KPI values (the names are the contract: see gateway/kpi/__init__).

Rates are percentages 0-100 and are left out when nothing was measured (no device heard of, no
incident acknowledged): an estate without generators has no generator readiness, not 0 % or 100 %.
Counts are always given (0 when nothing happened).
"""

from __future__ import annotations

import math

from gateway.kpi.buckets import SLOT, Bucket
from gateway.model import Priority

PRIORITIES = [p.value for p in Priority]
TIME_WEIGHTED = {
    "equipment_intact_rate": "equipment",
    "fire_intact_rate": "fire",
    "septic_intact_rate": "septic",
    "generator_readiness": "generator",
}
COUNTS = [
    "fire_alarms", "generator_test_runs", "alarms", "chattering_alarms", "incidents",
    "vehicle_entries", "vehicle_exits", "plates_denied", "unknown_plate_exits", "doors_forced",
    "doors_held", "after_hours_entries", "cards_denied", "patrol_tours",
]  # fmt: skip


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile: the smallest value with at least 90 % of samples at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _share(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole > 0 else None


def rates(bucket: Bucket) -> dict[str, float]:
    """The time-weighted rates alone (the report's daily series)."""
    out: dict[str, float] = {}
    for name, group in TIME_WEIGHTED.items():
        ok, bad = bucket.get(f"{group}_ok_s"), bucket.get(f"{group}_bad_s")
        value = _share(ok, ok + bad)
        if value is not None:
            out[name] = value
    return out


def kpis(
    bucket: Bucket, span: float, fire_points: int, flood_limit: int, overdue: int = 0
) -> dict[str, float]:
    """Every KPI of one period. `span`: seconds of the period elapsed (for the flood share);
    `overdue`: unacknowledged incidents already past their ack SLA, counted as late responses."""
    values: dict[str, float] = rates(bucket)
    for name in COUNTS:
        values[name] = bucket.get(name)
    for priority in PRIORITIES:
        values[f"incidents_{priority}"] = bucket.get(f"incidents_{priority}")
    if fire_points:
        values["fire_alarms_per_1000_points"] = 1000.0 * bucket.get("fire_alarms") / fire_points
    completed = bucket.get("patrol_tours_completed")  # guard tours with every checkpoint punched in order
    optional = {
        "fire_false_alarm_share": _share(bucket.get("fire_false_alarms"), bucket.get("fire_alarms_resolved")),
        "on_time_response_rate": _share(bucket.get("responses_on_time"), bucket.get("responses") + overdue),
        "repair_timeliness_rate": _share(bucket.get("repairs_on_time"), bucket.get("repairs")),
        "patrol_completion_rate": _share(completed, bucket.get("patrol_tours")),
        "patrol_on_time_rate": _share(bucket.get("patrol_tours_on_time"), completed),
    }
    values.update({name: value for name, value in optional.items() if value is not None})
    for kind in ("mtta", "mttr"):
        every: list[float] = []
        for priority in PRIORITIES:
            samples = bucket.samples.get(f"{kind}:{priority}", [])
            every.extend(samples)
            if samples:
                values[f"{kind}_s_{priority}"] = sum(samples) / len(samples)
                values[f"{kind}_s_{priority}_p90"] = p90(samples)
        if every:
            values[f"{kind}_s"] = sum(every) / len(every)
            values[f"{kind}_s_p90"] = p90(every)
    values["alarms_per_10min_peak"] = float(max(bucket.slots.values(), default=0))
    flooded = sum(1 for count in bucket.slots.values() if count > flood_limit)
    if span > 0:
        values["flood_time_share"] = min(100.0, 100.0 * flooded * SLOT / span)
    return values


def top_alarms(bucket: Bucket, n: int = 10) -> list[tuple[str, int, list[str]]]:
    """The n most frequent alarms: (device/rule key, activations, [message zh, message en])."""
    ranked = sorted(bucket.alarms.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [(key, count, bucket.labels.get(key, ["", ""])) for key, count in ranked]
