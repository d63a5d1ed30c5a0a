"""Maintenance duties (维保) in the site file: what must be done, how often, and who is reminded.

One optional `maintenance:` block per estate::

    maintenance:
      remind_role: engineer_on_call      # the duty roster's role told when a duty is due soon
      remind_channels: [console]         # escalation channels the reminder goes through
      duties:
        - {id: gen-1-test, kind: generator_test_run, device: gen-1, every_months: 1, remind_before_days: 3,
           name: {zh: 1号发电机月度试机, en: Generator 1 monthly test run}}
        - {id: gen-1-service, kind: generator_service, device: gen-1, every_run_hours: 250,
           remind_before_hours: 25, name: {zh: 1号发电机保养, en: Generator 1 service}}
        - {id: fire-annual, kind: fire_annual_inspection, device: fire-1, every_months: 12,
           remind_before_days: 30, last_done: 2026-03-15, name: {zh: 消防年检, en: Fire annual inspection}}

Kinds: `generator_test_run` is closed by the generator's own readings (an engine run of at least
`kpi.test_run_minutes`, the KPI engine's test-run rule); `generator_service` falls due every N run-hours
of the generator's `run_time` point; `fire_annual_inspection`, `extinguisher_check`, `septic_emptying` and
`interval` are recorded by hand (API / console) with who and when.

This module imports nothing from `schema` (schema imports it).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from gateway.config.patrol import Ident, Names
from gateway.config.text import Strict as _Strict
from gateway.model import Priority

__all__ = ["DutyConfig", "DutyKind", "MaintenanceConfig"]

DutyKind = Literal[
    "generator_test_run",
    "generator_service",
    "fire_annual_inspection",
    "extinguisher_check",
    "septic_emptying",
    "interval",
]


class DutyConfig(_Strict):
    """One scheduled duty of a device (or of the whole estate)."""

    id: Ident = Field(description="Duty id, unique within the estate (used in alarm keys and URLs)")
    kind: DutyKind = Field(description="What it is; generator_* duties are detected from readings")
    name: Names = Field(description="Duty name in Chinese and English")
    device: Ident | None = Field(None, description="The device it is for; unset: the estate as a whole")
    every_days: int | None = Field(None, ge=1, le=3660, description="Due this many days after the last one")
    every_months: int | None = Field(
        None, ge=1, le=120, description="Due this many calendar months after the last one (12: yearly)"
    )
    every_run_hours: float | None = Field(
        None, gt=0, le=100_000, description="generator_service: due after this many engine run-hours"
    )
    remind_before_days: float = Field(
        7.0, ge=0, le=365, description="Remind the engineer on call this many days before the due date"
    )
    remind_before_hours: float = Field(
        10.0, ge=0, description="generator_service: remind this many run-hours before it is due"
    )
    last_done: date | None = Field(
        None, description="Date of the last completion before the gateway kept records (local date)"
    )
    priority: Priority = Field(Priority.MEDIUM, description="Priority of the overdue alarm")

    @model_validator(mode="after")
    def _interval(self) -> DutyConfig:
        dated = [x for x in (self.every_days, self.every_months) if x is not None]
        if self.kind == "generator_service":
            if self.every_run_hours is None or dated:
                raise ValueError(
                    f"duty {self.id}: generator_service needs every_run_hours (and no days/months)"
                )
        elif len(dated) != 1 or self.every_run_hours is not None:
            raise ValueError(f"duty {self.id}: give exactly one of every_days, every_months")
        if self.kind.startswith("generator_") and self.device is None:
            raise ValueError(f"duty {self.id}: a {self.kind} duty names its generator (device)")
        return self


class MaintenanceConfig(_Strict):
    """The estate's maintenance duties (gateway/maintenance)."""

    duties: list[DutyConfig] = Field(default_factory=list, description="Scheduled duties")
    remind_role: str = Field(
        "engineer_on_call", description="Duty-roster role reminded when a duty is due soon"
    )
    remind_channels: list[str] = Field(
        default_factory=lambda: ["console"],
        description="Escalation channels (by name) the due-soon reminder is sent through",
    )
    tick_seconds: float = Field(30.0, gt=0, le=3600, description="How often due dates are evaluated")

    @model_validator(mode="after")
    def _unique(self) -> MaintenanceConfig:
        ids = [d.id for d in self.duties]
        if len(set(ids)) != len(ids):
            raise ValueError("maintenance duty ids appear twice")
        return self
