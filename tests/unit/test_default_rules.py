"""Every shipped default rule, driven by a timeline built from its own definition: it must raise with the
priority it declares, after its on-delay and not before. A new default rule is covered automatically."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.alerts import DeviceInfo
from gateway.alerts.rules import load_default_rules
from gateway.config.schema import RuleConfig, TermConfig
from gateway.model import DeviceEvent, Item, Quality, Reading
from tests.unit.test_engine import Timeline

RULES = load_default_rules()


def _concrete(point: str) -> str:
    return point.replace("*", "L1-D001")


def _value_for(term: RuleConfig | TermConfig) -> Any:
    if term.values:
        return term.values[0]
    assert term.op is not None and term.limit is not None
    return term.limit - 1 - getattr(term, "deadband", 0) if "<" in term.op else term.limit + 1


def _guard_readings(rule: RuleConfig, device: str) -> list[Item]:
    guard = rule.when
    if guard is None:
        return []
    value = guard.is_in[0] if guard.is_in else "__something_else__"
    return [Reading(0, "e1", device, guard.point, value)]


def _devices(rule: RuleConfig) -> list[DeviceInfo]:
    if rule.kind == "composite":
        out = []
        for i, term in enumerate(rule.terms or []):
            family = term.family.value if term.family else "plate_barrier"
            name = term.device or f"d{i}"
            points = tuple(_concrete(term.point).replace("L1-D001", f"L1-D00{n}") for n in range(1, 4))
            out.append(DeviceInfo("e1", name, family, points=points, zone="Z"))
        return out
    assert rule.family is not None
    points = (_concrete(rule.point),) if rule.point else ()
    return [DeviceInfo("e1", "dev", rule.family.value, points=points, zone="Z", heartbeat_timeout=None)]


def _trigger(rule: RuleConfig) -> list[tuple[float, list[Item]]]:
    """(time, items) steps that must raise the rule."""
    dev = "dev"
    if rule.kind == "offline":
        return [(0, [Reading(0, "e1", dev, "online", False)])]
    if rule.kind in ("event", "count"):
        attrs = {name: allowed[0] for name, allowed in (rule.match or {}).items()}
        if rule.group_by:
            attrs[rule.group_by] = 1
        n = rule.count or 1
        return [(i * 0.5, [DeviceEvent(0, "e1", dev, (rule.events or [""])[0], attrs)]) for i in range(n)]
    if rule.kind == "rate":
        assert rule.window and rule.limit is not None
        rise = rule.limit * rule.window / 60 * 2
        return [(t, [Reading(0, "e1", dev, rule.point or "", rise * t / rule.window)])
                for t in (0, rule.window / 2, rule.window)]  # fmt: skip
    if rule.kind == "composite":
        steps: list[tuple[float, list[Item]]] = []
        for i, term in enumerate(rule.terms or []):
            name = term.device or f"d{i}"
            for n in range(1, rule.at_least + 1):
                point = _concrete(term.point).replace("L1-D001", f"L1-D00{n}")
                steps.append((len(steps), [Reading(0, "e1", name, point, _value_for(term))]))
        return steps
    point = _concrete(rule.point or "")
    if point.endswith(".quality"):
        source = point.removesuffix(".quality")
        return [(0, [Reading(0, "e1", dev, source, 0, quality=Quality.BAD)])]
    return [(0, [*_guard_readings(rule, dev), Reading(0, "e1", dev, point, _value_for(rule))])]


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_default_rule_raises_with_its_priority(rule: RuleConfig) -> None:
    t = Timeline([rule], _devices(rule))
    if rule.schedule == "outside_gate_hours":  # 02:00 in Shanghai: outside 06:00-23:00
        t.clock.step_wall(
            datetime(2026, 11, 23, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() - t.clock.now()
        )
    raised = []
    steps = _trigger(rule)
    for at, items in steps:
        raised += [x for x in t.at(at, *items) if x.active]
    last = steps[-1][0]
    if rule.on_delay:
        assert raised == [], f"{rule.id} raised before its {rule.on_delay} s on-delay"
        raised += [x for x in t.at(last + rule.on_delay + 0.5) if x.active]
    assert [(x.rule, x.priority) for x in raised] == [(rule.id, rule.priority)]
    assert raised[0].message_zh and raised[0].message_en and "{" not in raised[0].message_en
