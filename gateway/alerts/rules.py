"""Rule configuration: the shipped defaults, site overrides, and compilation into per-device instances."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

from pydantic import TypeAdapter
from ruamel.yaml import YAML

from gateway.alerts.composite import compile_composite
from gateway.alerts.device import DeviceRef
from gateway.alerts.instance import RuleInstance
from gateway.alerts.schedule import GateHours
from gateway.config.schema import RuleConfig

__all__ = ["DeviceRef", "compile_rules", "load_default_rules", "merge_rules"]
DEFAULTS = Path(__file__).with_name("defaults.yaml")


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


def compile_rules(rules: Iterable[RuleConfig], devices: Iterable[DeviceRef]) -> list[RuleInstance]:
    """One instance per (rule, matching device); a glob point ("*.fire") gives one per matching point."""
    instances: list[RuleInstance] = []
    device_list = list(devices)
    hours: dict[tuple[str, str, tuple[str, ...], str | None], GateHours] = {}
    for rule in rules:
        if rule.kind == "composite":
            instances.extend(compile_composite(rule, device_list))
            continue
        for ref in device_list:
            if rule.device is not None:
                if rule.device not in (ref.device, f"{ref.estate}/{ref.device}"):
                    continue
            elif rule.family != ref.family:
                continue
            gate = None
            if rule.schedule != "always":
                spec = (ref.gate_hours, ref.timezone, ref.holidays, ref.holiday_gate_hours)
                gate = hours.get(spec) or hours.setdefault(spec, GateHours(*spec))
            if rule.point is not None and any(c in rule.point for c in "*?["):
                points: list[str | None] = list(fnmatch.filter(ref.points, rule.point))
            else:
                points = [None]
            for point in points:
                # A point alarm is shown where the point is and correlates in the point's zone.
                where = point or rule.point
                location, zone = ref.location_of(where), ref.zone_of(where)
                instances.append(RuleInstance(rule, ref.estate, ref.device, location, point, gate, zone))
    return instances
