"""Turn a camera's `plate_read` into the estate's verdict: a `plate_resident`, `plate_visitor`,
`plate_unknown` or `plate_blacklisted` event carrying the decision, for every ANPR transport alike.

Cameras disagree on direction: some report the vehicle's motion, some nothing; a lane camera is
usually fixed to one way. The lane's configured direction wins; otherwise the payload's word is
mapped onto in/out.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.anpr.registry import Decision, Direction, VehicleRegistry
from gateway.model import DeviceEvent

PLATE_READ = "plate_read"
_DIRECTIONS: dict[str, Direction] = {
    "in": "in", "enter": "in", "entry": "in", "forward": "in", "obverse": "in", "approach": "in",
    "out": "out", "exit": "out", "leave": "out", "reverse": "out", "away": "out",
}  # fmt: skip
_CAMERA_LISTS = {
    "allowlist": "allow", "allow": "allow", "whitelist": "allow",
    "blocklist": "block", "block": "block", "blacklist": "block",
}  # fmt: skip


def direction_of(raw: object) -> Direction | None:
    return _DIRECTIONS.get(str(raw).strip().lower()) if raw is not None else None


@dataclass(frozen=True)
class Verdict:
    event: DeviceEvent
    decision: Decision


class PlateClassifier:
    """One camera's classifier: its estate's registry, and its lane's fixed direction if it has one."""

    def __init__(self, registry: VehicleRegistry, lane_direction: Direction | None = None) -> None:
        self.registry, self.lane_direction = registry, lane_direction

    def classify(self, event: DeviceEvent) -> Verdict:
        attrs = event.attributes
        direction = self.lane_direction or direction_of(attrs.get("direction"))
        camera_list = _CAMERA_LISTS.get(str(attrs.get("camera_list", "")).lower())
        decision = self.registry.decide(
            str(attrs.get("plate", "")), direction, event.ts_ns / 1e9, camera_list
        )
        attributes = {
            **attrs,
            "plate": decision.plate or "无牌",
            "direction": direction or "unknown",
            "category": decision.category.value,
            "decision": "open" if decision.open else "hold",
            "detail": decision.detail,
        }
        classified = DeviceEvent(
            event.ts_ns, event.estate, event.device, decision.kind, attributes, event.source
        )
        return Verdict(classified, decision)
