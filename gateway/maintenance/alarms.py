"""The overdue alarm of a maintenance duty, as a Transition (like gateway/sinks/spool_alarm.py): on the
duty's device (or device "maintenance" for an estate-wide duty), key
`{estate}/{device}/maintenance_overdue/{duty}`, raised once when the duty falls due and cleared once when
its completion is recorded. Rule `maintenance_overdue` is in the KPI engine's default fault rules, so
the device counts as not intact (设备完好率, and 应急发电可用率 for a generator) while it is overdue."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.alerts import Transition
from gateway.config.maintenance import DutyConfig
from gateway.maintenance.duty import Judgement

__all__ = ["ESTATE_DEVICE", "RULE", "due_text", "overdue_transition"]

RULE = "maintenance_overdue"
ESTATE_DEVICE = "maintenance"  # the alarm's device for a duty of the whole estate


def due_text(verdict: Judgement, timezone: str) -> tuple[str, str]:
    """When it is (was) due, in words: a local date, or run-hours."""
    if verdict.due_at is not None:
        day = datetime.fromtimestamp(verdict.due_at, ZoneInfo(timezone)).strftime("%Y-%m-%d")
        return day, day
    hours = f"{verdict.due_run_hours or 0:.0f}"
    return f"运行 {hours} 小时", f"{hours} run-hours"


def overdue_transition(
    estate: str, duty: DutyConfig, verdict: Judgement, active: bool, now: float, timezone: str
) -> Transition:
    device = duty.device or ESTATE_DEVICE
    zh, en = due_text(verdict, timezone)
    return Transition(
        f"{estate}/{device}/{RULE}/{duty.id}", estate, device, RULE, duty.priority, active, now, duty.id,
        f"维保逾期：{duty.name.zh}（应于 {zh} 完成）", f"Maintenance overdue: {duty.name.en} (due {en})",
    )  # fmt: skip
