"""The line-protocol contract: what the gateway writes to InfluxDB (and VictoriaMetrics), point by point.

Dashboards are built on this page; change it only together with them (dashboards/).

Each source, as measurement; tags; fields; timestamp:

- **Reading** → the device family (`access_gate`, `plate_barrier`, `fire_panel`, `septic_pressure`,
  `generator`; `reading` for a device not in the config); tags `estate`, `device`, `point`, `quality`;
  field `value` float (bool → 1.0/0.0, int → float), or for a str value the string field `text`;
  time = the reading's ts.
- **DeviceEvent** → `device_event`; tags `estate`, `device`, `family`, `kind`, plus, when present, the
  low-cardinality attributes `direction`, `lane`, `decision`, `category`, `reason`, `method`, `door`,
  `reader`, `zone`, `camera_list` (what drivers/anpr and the access-control profiles put there); fields
  `count=1i`, the high-cardinality attributes as string fields `plate`, `card`, `employee`, and
  `confidence` (float) when numeric; time = the event's ts.
- **Alarm transition** (gateway.alerts `Transition`) → `alarm`; tags `estate`, `device`, `rule`,
  `priority`, `state` (`active` | `normal`), `reason` (left out when empty); fields `active` (1i/0i),
  `count=1i`, `value` (float, when the value is numeric); time = the transition's ts.
- **Incident change** (`IncidentChange`) → `incident`, one point per timeline entry the change carries
  (a new incident: each entry of its first timeline); tags `estate`, `priority`, `event` (the timeline
  action: `opened`, `acknowledged`, `resolved`, `closed`, `shelved`, `unshelved`, `notified`,
  `alarm_correlated`, ...), `rule`; fields `id` (int), `count=1i`, `tta_s` (float, opened →
  acknowledged, on `acknowledged`), `ttr_s` (float, opened → resolved, on `resolved`); time = the entry's.
- **KPI value** → `kpi`; tags `estate`, `kpi` (the name, e.g. `equipment_intact_rate`), `period`
  (`day` | `month` | `rolling_24h`); field `value` float; time = when it was polled.
- **Open incidents** (snapshot) → `incidents_open`; tags `estate`, `priority`; field `count` (int).
- **Gateway health** (snapshot) → `gateway`; tag `gateway_id`; every numeric health value as a float
  field (`queue_depth`, `items_processed`, `store_failures`, `core_errors`, `devices_online`,
  `devices_offline`, `incidents_opened`, and the sink's `points_written`, `points_spooled`,
  `points_dropped`, `spool_points`, `spool_bytes`, `lag_s`, `write_errors`). All floats: InfluxDB rejects
  a field whose type changes between writes. Bools, text and None are skipped.

Timestamps are integer nanoseconds (write precision `ns`); wall-clock seconds (transitions, timelines)
are converted with rounding. VictoriaMetrics keeps milliseconds and names a field `measurement_field`
(`generator_value`, `alarm_active`); string fields are not stored there (Grafana reads them from InfluxDB).

Escaping follows influxdb-client's `Point` (the reference for InfluxDB): in the measurement, commas and
spaces; in tag keys, tag values and field keys, commas, equals signs and spaces; newlines, tabs and
carriage returns become `\\n`, `\\t`, `\\r`; a key or tag value ending in a backslash gets a trailing space
(`Point` does it for tag values only; a field key `k\\` would read as an escaped `=` otherwise). In
string field values, double quotes and backslashes are escaped and, unlike `Point`, a newline is written
as `\\n` (two characters): VictoriaMetrics splits lines on a raw newline even inside quotes. Tags with an
empty value are left out (line protocol has no empty tag). NaN and ±inf are dropped and counted in
`LineEncoder.dropped_nonfinite`; a point left with no field is not written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateway.alerts import Transition
from gateway.incidents.manager import IncidentChange
from gateway.model import DeviceEvent, Reading

__all__ = [
    "EVENT_STRING_FIELDS",
    "EVENT_TAGS",
    "FieldValue",
    "LineEncoder",
    "encode_line",
    "escape_measurement",
    "escape_tag",
    "seconds_to_ns",
]

FieldValue = float | int | bool | str

# Event attributes written as tags: few distinct values, what dashboards group by.
EVENT_TAGS = ("direction", "lane", "decision", "category", "reason", "method", "door", "reader", "zone",
              "camera_list")  # fmt: skip
# Event attributes written as string fields: one value per vehicle or person (never tags: cardinality).
EVENT_STRING_FIELDS = ("plate", "card", "employee")
EVENT_NUMBER_FIELDS = ("confidence",)
UNKNOWN_FAMILY = "reading"
_PREFIX_CACHE_MAX = 200_000  # distinct reading series remembered with their encoded prefix

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n"})


class _Family(Protocol):
    @property
    def estate(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def family(self) -> str: ...


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT)


def escape_tag(text: str) -> str:
    """A tag key, tag value or field key."""
    escaped = text.translate(_KEY)
    return escaped + " " if escaped.endswith("\\") else escaped


def seconds_to_ns(ts: float) -> int:
    """Wall seconds → ns, rounded to the microsecond: a float of epoch seconds holds no finer digits, and
    rounding there keeps 1790000000.25 at ...250000000 instead of ...249999872."""
    return round(ts * 1_000_000) * 1000


def _field(key: str, value: FieldValue) -> str | None:
    """One `key=value`; None for a non-finite float."""
    if isinstance(value, bool):
        return f"{escape_tag(key)}={'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{escape_tag(key)}={value}i"
    if isinstance(value, float):
        return f"{escape_tag(key)}={value!r}" if math.isfinite(value) else None
    return f'{escape_tag(key)}="{value.translate(_STRING)}"'


def encode_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ns: int
) -> tuple[str | None, int]:
    """One point as a line, and how many non-finite field values were dropped from it.

    The line is None when no field is left. Tags are written sorted by key (InfluxDB's preferred order).
    """
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value:
            parts.append(f"{escape_tag(key)}={escape_tag(value)}")
    encoded, dropped = [], 0
    for key in sorted(fields):
        text = _field(key, fields[key])
        if text is None:
            dropped += 1
        else:
            encoded.append(text)
    if not encoded:
        return None, dropped
    return f"{','.join(parts)} {','.join(encoded)} {ts_ns}", dropped


class LineEncoder:
    """Encodes the gateway's data into lines by the contract above; counts what it cannot write.

    `families` maps (estate, device) → family; build it with `LineEncoder.of(device_infos)`.
    """

    def __init__(self, families: Mapping[tuple[str, str], str] | None = None) -> None:
        self.families: dict[tuple[str, str], str] = dict(families or {})
        self.dropped_nonfinite = 0  # field values (NaN, ±inf) left out
        self._prefixes: dict[tuple[str, str, str, str], str] = {}

    @classmethod
    def of(cls, devices: Iterable[_Family]) -> LineEncoder:
        return cls({(d.estate, d.device): str(d.family) for d in devices})

    def _line(
        self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ns: int
    ) -> str | None:
        line, dropped = encode_line(measurement, tags, fields, ts_ns)
        self.dropped_nonfinite += dropped
        return line

    # -- the pipeline's data ---------------------------------------------------------------------
    def item(self, item: Reading | DeviceEvent) -> str | None:
        return self.reading(item) if isinstance(item, Reading) else self.event(item)

    def reading(self, reading: Reading) -> str | None:
        """The hot path: the measurement and tag set of a series are encoded once and cached."""
        key = (reading.estate, reading.device, reading.point, reading.quality)
        prefix = self._prefixes.get(key)
        if prefix is None:
            family = self.families.get((reading.estate, reading.device), UNKNOWN_FAMILY)
            tags = {"estate": reading.estate, "device": reading.device, "point": reading.point,
                    "quality": str(reading.quality)}  # fmt: skip
            prefix = ",".join(
                [escape_measurement(family)] + [f"{k}={escape_tag(v)}" for k, v in sorted(tags.items()) if v]
            )
            if len(self._prefixes) >= _PREFIX_CACHE_MAX:
                self._prefixes.clear()
            self._prefixes[key] = prefix
        value = reading.value
        if isinstance(value, str):
            return f'{prefix} text="{value.translate(_STRING)}" {reading.ts_ns}'
        number = float(value)
        if not math.isfinite(number):
            self.dropped_nonfinite += 1
            return None
        return f"{prefix} value={number!r} {reading.ts_ns}"

    def event(self, event: DeviceEvent) -> str | None:
        attrs = event.attributes
        tags = {
            "estate": event.estate,
            "device": event.device,
            "family": self.families.get((event.estate, event.device), ""),
            "kind": event.kind,
        }
        for name in EVENT_TAGS:
            value = attrs.get(name)
            if value is not None and not isinstance(value, dict | list):
                tags[name] = str(value)
        fields: dict[str, FieldValue] = {"count": 1}
        for name in EVENT_STRING_FIELDS:
            value = attrs.get(name)
            if value is not None and value != "":
                fields[name] = str(value)
        for name in EVENT_NUMBER_FIELDS:
            value = attrs.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                fields[name] = float(value)
        return self._line("device_event", tags, fields, event.ts_ns)

    def transition(self, t: Transition) -> str | None:
        tags = {
            "estate": t.estate,
            "device": t.device,
            "rule": t.rule,
            "priority": str(t.priority),
            "state": "active" if t.active else "normal",
            "reason": t.reason,
        }
        fields: dict[str, FieldValue] = {"active": 1 if t.active else 0, "count": 1}
        if isinstance(t.value, int | float):
            fields["value"] = float(t.value)
        return self._line("alarm", tags, fields, seconds_to_ns(t.ts))

    def incident(self, change: IncidentChange) -> list[str]:
        """One point per timeline entry the change carries."""
        incident, lines = change.incident, []
        entries = change.entries or (incident.timeline if change.new else [])
        for entry in entries:
            tags = {"estate": incident.estate, "priority": str(incident.priority), "event": entry.action,
                    "rule": incident.rule}  # fmt: skip
            fields: dict[str, FieldValue] = {"id": int(incident.id), "count": 1}
            # clamped: after an NTP step back the wall clock can put the ack "before" the opening
            if entry.action == "acknowledged":
                fields["tta_s"] = max(0.0, float(entry.ts - incident.opened_at))
            elif entry.action == "resolved":
                fields["ttr_s"] = max(0.0, float(entry.ts - incident.opened_at))
            line = self._line("incident", tags, fields, seconds_to_ns(entry.ts))
            if line is not None:
                lines.append(line)
        return lines

    # -- polled values ---------------------------------------------------------------------------
    def kpi(self, estate: str, period: str, name: str, value: float, ts_ns: int) -> str | None:
        return self._line("kpi", {"estate": estate, "kpi": name, "period": period}, {"value": float(value)},
                          ts_ns)  # fmt: skip

    def incidents_open(self, estate: str, priority: str, count: int, ts_ns: int) -> str | None:
        return self._line("incidents_open", {"estate": estate, "priority": priority}, {"count": int(count)},
                          ts_ns)  # fmt: skip

    def gateway(self, gateway_id: str, health: Mapping[str, Any], ts_ns: int) -> str | None:
        """The numeric values of the health dict, as floats: InfluxDB rejects a field whose type changes
        (an int counter one time, a float the next). Bools, text and None are skipped."""
        fields: dict[str, FieldValue] = {
            key: float(value)
            for key, value in health.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        return self._line("gateway", {"gateway_id": gateway_id}, fields, ts_ns)
