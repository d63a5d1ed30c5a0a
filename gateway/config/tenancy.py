"""Config of the two-person rule (a device command's policy) and of companies above the estate.

commands:
  start: supervisor                      # the short form: least role
  stop:                                  # the long form: dangerous while the generator is on load
    role: supervisor
    confirm_by: [supervisor, admin]      # ranks or jobs (shift_leader, fire_control, ...)
    within: 120                          # seconds the second person has
    when: {point: total_power, above: 0}
companies:
  - {id: sunny-pm, name: {zh: 阳光物业, en: Sunny Property}, estates: [sunshine]}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.config.text import LocalizedText
from gateway.config.text import Strict as _Strict

__all__ = ["CommandPolicyConfig", "CompanyConfig", "DangerWhenConfig"]

_RoleName = Literal["viewer", "operator", "supervisor", "admin"]
_Confirmer = Literal[
    "operator", "supervisor", "admin", "guard", "shift_leader", "engineer", "fire_control", "manager"
]


class DangerWhenConfig(_Strict):
    """When the command is dangerous. Give `point` (of the same device) with `in` or `above`, or `alarm`
    (rule-id globs: any active alarm of the estate whose rule matches one). A point that has not
    reported yet counts as dangerous."""

    point: str | None = Field(None, description="Point of the same device, e.g. total_power")
    is_in: list[str | float | int | bool] | None = Field(None, alias="in", description="Dangerous values")
    above: float | None = Field(None, description="Dangerous above this value (e.g. on load: power > 0)")
    alarm: list[str] | None = Field(
        None,
        min_length=1,
        description="Rule-id globs: dangerous while an alarm of the estate matching one is active, e.g. "
        "[fire_point_fire, fire_confirmed*]",
    )

    @model_validator(mode="after")
    def _one_condition(self) -> DangerWhenConfig:
        if (self.point is None) == (self.alarm is None):
            raise ValueError("give either 'point' (with 'in' or 'above') or 'alarm'")
        if self.point is not None and (self.is_in is None) == (self.above is None):
            raise ValueError("'point' needs exactly one of 'in' or 'above'")
        return self


class CommandPolicyConfig(_Strict):
    """A command with its least role and, when `confirm_by` is given, the two-person rule."""

    role: _RoleName = Field(description="Least role that may ask for the command")
    confirm_by: list[_Confirmer] = Field(
        default_factory=list,
        description="Ranks or jobs of the second person who must confirm; empty: no confirmation",
    )
    within: float = Field(120, gt=0, le=3600, description="Seconds the second person has to confirm")
    when: Literal["always"] | DangerWhenConfig = Field(
        "always", description="When a confirmation is needed: always, or while a condition holds"
    )


class CompanyConfig(_Strict):
    """A property company (物业公司) and the estates it runs; users may be scoped to company:<id>."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Company id")
    name: LocalizedText = Field(description="Company name in Chinese and English")
    estates: list[str] = Field(min_length=1, description="Ids of its estates (each in one company only)")
