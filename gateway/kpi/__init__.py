"""KPIs per estate (DESIGN §7): per local day, per local month (the sum of its days) and rolling 24 h
(the current hour and the 23 before it), computed incrementally from the stream: readings and events
and alarm transitions (pipeline observer), incident changes (incident listener).

Days and months follow the estate's timezone (default Asia/Shanghai). Time-weighted rates integrate the
number of intact and impaired units between changes; an interval is cut at local midnight, so an outage
from 23:00 to 01:00 counts one hour in each day (and each month). Time before a device is first heard
of, or while the gateway is down, counts as neither intact nor impaired. Rates are percentages 0-100,
left out when there is nothing to measure. The names below are the contract (InfluxDB measurement
`kpi`, tags estate / kpi / period, field value; Grafana and the console read them).

Time-weighted (unit-seconds intact / unit-seconds known):
- `equipment_intact_rate` 设备完好率: every device; impaired while offline (an `online` false reading
  or an active offline/heartbeat alarm) or while an alarm of `kpi.fault_rules` is active on it.
- `fire_intact_rate` 消防设施完好率: every fire point (detector "1-001" of "1-001.fire" /
  "1-001.state"; a panel without a point list counts as one point); impaired while its fault or
  disabled alarm (`kpi.fire_impairment_rules`) is active or its panel is offline.
- `septic_intact_rate` 化粪池完好率: every septic sensor; impaired while offline, its sensor fault or a
  high / high-high level alarm (`kpi.septic_rules`) is active.
- `generator_readiness` 应急发电可用率: every generator; impaired while offline, not in a ready
  `control_mode` (auto, test...), `fuel_level` below `kpi.generator_min_fuel_pct`, or a fault alarm.

Guard tours (gateway/patrol), counted in the period the tour was due, once it has ended:
- `patrol_tours` (tours due and ended), `patrol_completion_rate` 巡更完成率: % of them with every
  checkpoint punched in order (late or not); `patrol_on_time_rate` 巡更准时率: % of the completed ones
  with every checkpoint within its tolerance.

Maintenance (gateway/maintenance): an overdue duty's alarm `maintenance_overdue` is one of the default
`kpi.fault_rules`, so while a device's duty is overdue that device is impaired in 设备完好率, and a
generator's also in 应急发电可用率 (a missed monthly test run makes the generator not ready). A duty of
the whole estate (no device) counts against no device.

Counts in the period:
- `fire_alarms`: activations of fire alarms (`kpi.fire_alarm_rules`); `fire_alarms_per_1000_points`.
- `fire_false_alarm_share`: % of fire-alarm incidents resolved in the period with cause false_alarm.
- `generator_test_runs`: engine runs (`engine_state` running) of at least `kpi.test_run_minutes`,
  counted when the run reaches that length.
- `alarms` (activations), `alarms_per_10min_peak` (most alarms in one 10-minute slot, ISA-18.2),
  `flood_time_share` (% of the elapsed period in slots with more than `kpi.flood_alarms_per_10min`),
  `chattering_alarms` (alarms newly flagged as chattering); top-10 frequent alarms in the report.
- `incidents`, `incidents_<priority>`: incidents opened.
- Vehicles and gates: `vehicle_entries` / `vehicle_exits` (plate verdicts with decision open, by
  direction), `plates_denied` (decision hold, or blacklisted), `unknown_plate_exits` (unregistered
  plate reading out), `doors_forced`, `doors_held` (door_held events and door-contact held-open
  alarms), `after_hours_entries` (card_granted outside the estate's gate hours), `cards_denied`.

Incident times (samples in the bucket of the ack / resolution time):
- `mtta_s`, `mtta_s_p90` and per priority `mtta_s_<priority>`, `mtta_s_<priority>_p90`: seconds from
  opening to the first acknowledgement (p90: nearest rank). `mttr_s...` likewise to resolution.
- `on_time_response_rate` 响应及时率: % of responses within `kpi.ack_sla_s` of the priority; an
  incident resolved without an ack responds at resolution; one still unacknowledged past its SLA counts
  as late in the period its deadline fell in.
- `repair_timeliness_rate` 维修及时率: % of fault incidents (fault, fire impairment or offline rules, or
  resolved with cause fault) resolved within `kpi.repair_sla_s`; priorities in `kpi.repair_same_day`
  (minor faults) must also be resolved on the local day they opened.
"""

from gateway.kpi.compute import kpis, p90, rates, top_alarms
from gateway.kpi.engine import PERIODS, KpiEngine, KpiSet, KpiStore, KpiValue, MonthDetail, estates_of
from gateway.kpi.estate import KpiEstate

__all__ = [
    "PERIODS",
    "KpiEngine",
    "KpiEstate",
    "KpiSet",
    "KpiStore",
    "KpiValue",
    "MonthDetail",
    "estates_of",
    "kpis",
    "p90",
    "rates",
    "top_alarms",
]
