"""KPI settings (DESIGN §7): SLAs per priority, what counts as a fault, readiness, targets.

One optional `kpi:` block in the site file::

    kpi:
      ack_sla_s: {critical: 60, high: 180, medium: 600, low: 1800}
      test_run_minutes: 15
      targets:
        equipment_intact_rate: {min: 98}
        fire_intact_rate: {min: 100}

Rule ids name the shipped defaults (gateway/alerts/defaults.yaml); a site that adds its own fault rules
lists them here too. This module imports nothing from `schema` (schema imports it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.model import Priority


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KpiTarget(_Strict):
    """A pass mark for one KPI in the monthly assessment: at least `min`, at most `max`."""

    min: float | None = Field(None, description="The KPI passes when it is at least this")
    max: float | None = Field(None, description="The KPI passes when it is at most this")

    @model_validator(mode="after")
    def _one_bound(self) -> KpiTarget:
        if self.min is None and self.max is None:
            raise ValueError("a target needs 'min' or 'max'")
        return self

    def passes(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


def _by_priority(critical: float, high: float, medium: float, low: float) -> dict[Priority, float]:
    return {Priority.CRITICAL: critical, Priority.HIGH: high, Priority.MEDIUM: medium, Priority.LOW: low}


_FAULT_RULES = [
    "gen_fail_to_start", "gen_controller_fail_to_start", "gen_low_oil_pressure", "gen_controller_low_oil",
    "gen_high_coolant", "gen_emergency_stop", "gen_battery_low", "gate_tamper",
    "fire_point_fault", "fire_point_state_fault", "septic_sensor_fault",
    "maintenance_overdue",  # a duty past due (gateway/maintenance): the device is not intact meanwhile
]  # fmt: skip
_FIRE_IMPAIRMENT_RULES = [
    "fire_point_fault", "fire_point_disabled", "fire_point_state_fault", "fire_point_state_disabled",
]  # fmt: skip
_DEFAULT_TARGETS = {
    "equipment_intact_rate": KpiTarget(min=98.0),
    "fire_intact_rate": KpiTarget(min=100.0),
    "septic_intact_rate": KpiTarget(min=98.0),
    "generator_readiness": KpiTarget(min=98.0),
    "generator_test_runs": KpiTarget(min=1.0),
    "on_time_response_rate": KpiTarget(min=95.0),
    "repair_timeliness_rate": KpiTarget(min=90.0),
    "patrol_completion_rate": KpiTarget(min=95.0),
    "fire_false_alarm_share": KpiTarget(max=20.0),
    "alarms_per_10min_peak": KpiTarget(max=10.0),
    "flood_time_share": KpiTarget(max=1.0),
}


class KpiConfig(_Strict):
    """How the KPI engine judges an estate (gateway/kpi)."""

    ack_sla_s: dict[Priority, float] = Field(
        default_factory=lambda: _by_priority(60, 180, 600, 1800),
        description="Seconds within which an incident of each priority must be acknowledged (响应及时率)",
    )
    repair_sla_s: dict[Priority, float] = Field(
        default_factory=lambda: _by_priority(4 * 3600, 24 * 3600, 72 * 3600, 24 * 3600),
        description="Seconds within which a fault incident of each priority must be resolved (维修及时率)",
    )
    repair_same_day: list[Priority] = Field(
        default_factory=lambda: [Priority.LOW],
        description="Minor faults: these priorities must also be resolved on the local day they opened",
    )
    test_run_minutes: float = Field(
        15.0, gt=0, description="A generator run at least this long counts as a test run"
    )
    generator_running_states: list[str] = Field(
        default_factory=lambda: ["running"], description="engine_state values that mean the engine runs"
    )
    generator_ready_modes: list[str] = Field(
        default_factory=lambda: ["auto", "test", "test_on_load", "test_off_load", "auto_manual_restore"],
        description="control_mode values in which the generator starts by itself on mains failure",
    )
    generator_min_fuel_pct: float = Field(
        20.0, ge=0, le=100, description="Fuel level (%) below which the generator is not ready"
    )
    fault_rules: list[str] = Field(
        default_factory=lambda: list(_FAULT_RULES),
        description="Rule ids whose active alarm makes a device not intact (besides being offline)",
    )
    fire_impairment_rules: list[str] = Field(
        default_factory=lambda: list(_FIRE_IMPAIRMENT_RULES),
        description="Rule ids that impair a fire point (fault, disabled)",
    )
    fire_alarm_rules: list[str] = Field(
        default_factory=lambda: ["fire_point_fire", "fire_point_state_fire"],
        description="Rule ids that are fire alarms (counted, and their incidents' causes judged)",
    )
    septic_rules: list[str] = Field(
        default_factory=lambda: ["septic_sensor_fault", "septic_high", "septic_high_high"],
        description="Rule ids that make a septic sensor unhealthy or its tank too full",
    )
    flood_alarms_per_10min: int = Field(
        10, ge=1, description="More alarms than this in a 10-minute slot is a flood (ISA-18.2)"
    )
    targets: dict[str, KpiTarget] = Field(
        default_factory=lambda: dict(_DEFAULT_TARGETS),
        description="Pass marks of the monthly assessment, by KPI name; a site file replaces the whole map",
    )
    save_interval: float = Field(60.0, gt=0, description="Seconds between saves of the accumulators")
    retention_days: int = Field(400, ge=35, description="Days of daily accumulators kept")
