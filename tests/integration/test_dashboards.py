"""The generated Grafana dashboards against a real InfluxDB 1.x (Debian's influxd) holding a simulated
day written through the sink's own line encoder (gateway/sinks/lines.py), so the data follows the real
contract.

Every variable query and every panel query of every dashboard runs through /query the way Grafana
would send it ($timeFilter, $__interval and the variables substituted, All = `(a|b)`), and must return
series with the columns it selects. The JSON itself: parses, has a schemaVersion, unique panel ids,
every datasource reference is the provisioned uid, bilingual titles, and equals what the code generates.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from dashboards.generate import JSON_DIR, render_all
from dashboards.influxql import DATABASE, DATASOURCE_UID
from gateway.alerts import Transition
from gateway.incidents.manager import FLOOD_RULE, IncidentChange
from gateway.model import DeviceEvent, Incident, IncidentState, Priority, Reading, TimelineEntry
from gateway.sinks.lines import LineEncoder
from tests.integration.influxql import InfluxProcess

pytestmark = pytest.mark.integration

PROVISIONING = Path(JSON_DIR).parent / "provisioning"
DAY = 86_400
STEP = 300  # one simulated sample every 5 minutes
INTERVAL = "5m"  # what Grafana would pick for 24 h on a ~290-pixel-wide panel
ESTATES = ("sunshine", "riverside")
DEVICES = {
    ("sunshine", "gen-1"): "generator",
    ("riverside", "gen-2"): "generator",
    ("sunshine", "septic-1"): "septic_pressure",
    ("sunshine", "septic-2"): "septic_pressure",
    ("riverside", "septic-3"): "septic_pressure",
    ("sunshine", "gate-east"): "access_gate",
    ("riverside", "gate-north"): "access_gate",
    ("sunshine", "lpr-main"): "plate_barrier",
    ("riverside", "lpr-north"): "plate_barrier",
    ("sunshine", "fire-1"): "fire_panel",
}
KPIS = {
    "equipment_intact_rate": 99.2, "fire_intact_rate": 100.0, "septic_intact_rate": 97.5,
    "generator_readiness": 98.8, "on_time_response_rate": 96.0, "repair_timeliness_rate": 91.0,
    "mtta_s": 95.0, "mttr_s": 5400.0, "fire_alarms": 2, "alarms": 41, "incidents": 17,
    "generator_test_runs": 1, "vehicle_entries": 310, "vehicle_exits": 298, "plates_denied": 3,
    "unknown_plate_exits": 1, "doors_forced": 1, "doors_held": 4,
    **{f"{kind}_s_{p.value}": 60.0 * (i + 1) for i, p in enumerate(Priority) for kind in ("mtta", "mttr")},
}  # fmt: skip


# -- a simulated day -----------------------------------------------------------------------------
class Day:
    """Lines for one day ending at `end` (epoch s), deterministic (seeded)."""

    def __init__(self, end: int) -> None:
        self.end, self.start = end, end - DAY
        self.encoder = LineEncoder(DEVICES)
        self.rng = random.Random(6)
        self.lines: list[str] = []

    def times(self, step: int = STEP) -> Iterator[int]:
        yield from range(self.start + step, self.end, step)

    def add(self, line: str | None) -> None:
        assert line is not None
        self.lines.append(line)

    def reading(self, ts: float, estate: str, device: str, point: str, value: float | str | bool) -> None:
        self.add(self.encoder.reading(Reading(int(ts * 1e9), estate, device, point, value)))

    def event(self, ts: float, estate: str, device: str, kind: str, **attributes: Any) -> None:
        self.add(self.encoder.event(DeviceEvent(int(ts * 1e9), estate, device, kind, attributes)))

    def alarm(self, ts: float, estate: str, device: str, rule: str, priority: Priority, value: float) -> None:
        for active, at in ((True, ts), (False, ts + 120)):
            t = Transition(
                f"{estate}/{device}/{rule}", estate, device, rule, priority, active, at, value, "", ""
            )
            self.add(self.encoder.transition(t))

    def build(self) -> list[str]:
        self.generators()
        self.septic()
        self.gates()
        self.alarms_and_incidents()
        self.snapshots()
        return self.lines

    def generators(self) -> None:
        for (estate, device), family in DEVICES.items():
            if family != "generator":
                continue
            for i, ts in enumerate(self.times()):
                running = 40 <= i < 46  # a half-hour test run
                self.reading(ts, estate, device, "control_mode", "test_on_load" if running else "auto")
                self.reading(ts, estate, device, "engine_state", "running" if running else "stopped")
                self.reading(ts, estate, device, "mains_failed", False)
                self.reading(ts, estate, device, "mains_voltage", 228.0 + self.rng.uniform(-3, 3))
                self.reading(ts, estate, device, "total_power", 42_000.0 if running else 0.0)
                self.reading(ts, estate, device, "engine_speed", 1500.0 if running else 0.0)
                self.reading(ts, estate, device, "fuel_level", 80.0 - 0.05 * i)
                self.reading(ts, estate, device, "battery_voltage", 26.4 + self.rng.uniform(-0.2, 0.2))
                self.reading(ts, estate, device, "run_time", 3_600_000.0 + 300 * max(0, i - 40))

    def septic(self) -> None:
        for (estate, device), family in DEVICES.items():
            if family != "septic_pressure":
                continue
            for i, ts in enumerate(self.times()):
                kpa = 12.0 + 8.0 * (i % 96) / 96 + self.rng.uniform(-0.3, 0.3)
                self.reading(ts, estate, device, "pressure", kpa)
                self.reading(ts, estate, device, "level_m", kpa * 0.101968 / 1.02)

    def gates(self) -> None:
        kinds = ("plate_resident", "plate_resident", "plate_visitor", "plate_unknown", "plate_blacklisted")
        for (estate, device), family in DEVICES.items():
            for ts in self.times(600):
                if family == "plate_barrier":
                    kind = self.rng.choice(kinds)
                    self.event(
                        ts, estate, device, kind, plate=f"沪A{self.rng.randrange(10000, 99999)}",
                        direction=self.rng.choice(("in", "out")), category=kind.removeprefix("plate_"),
                        decision="hold" if kind == "plate_blacklisted" else "open",
                    )  # fmt: skip
                elif family == "access_gate":
                    kind = self.rng.choice(("card_granted", "card_granted", "card_denied", "door_held"))
                    self.event(ts, estate, device, kind, card="12345678", reader="1", door="1")
            if family == "access_gate":
                self.event(self.end - 3600, estate, device, "door_forced", door="1")

    def alarms_and_incidents(self) -> None:
        plan = [
            ("sunshine", "gen-1", "gen_fuel_low", Priority.MEDIUM, 18.0),
            ("sunshine", "septic-1", "septic_high", Priority.MEDIUM, 19.0),
            ("sunshine", "septic-2", "septic_high_high", Priority.HIGH, 23.0),
            ("riverside", "septic-3", "septic_high", Priority.MEDIUM, 18.5),
            ("sunshine", "fire-1", "fire_point_fire", Priority.CRITICAL, 1.0),
            ("riverside", "gen-2", "gen_battery_low", Priority.MEDIUM, 21.5),
            ("riverside", "gate-north", "gate_door_forced", Priority.HIGH, 1.0),
        ]
        incident_id = 0
        for n, ts in enumerate(self.times(1800)):
            estate, device, rule, priority, value = plan[n % len(plan)]
            self.alarm(ts, estate, device, rule, priority, value)
            incident_id += 1
            self.incident(incident_id, ts, estate, device, rule, priority)
        flood_at = self.end - 2 * 3600  # a burst of 14 alarms in 10 minutes, grouped into one incident
        for k in range(14):
            self.alarm(flood_at + 40 * k, "sunshine", f"fire-{k}", "fire_point_pre_alarm", Priority.HIGH, 1.0)
        self.incident(
            incident_id + 1, flood_at + 400, "sunshine", "*", FLOOD_RULE, Priority.HIGH, "flood_started"
        )

    def incident(
        self,
        id_: int,
        ts: float,
        estate: str,
        device: str,
        rule: str,
        priority: Priority,
        first: str = "opened",
    ) -> None:
        incident = Incident(
            id=id_, estate=estate, device=device, rule=rule, alarm_key=f"{estate}/{device}/{rule}",
            priority=priority, state=IncidentState.OPEN, title="", opened_at=ts, updated_at=ts,
            timeline=[TimelineEntry(ts, first)],
        )  # fmt: skip
        self.lines.extend(self.encoder.incident(IncidentChange(incident, new=True)))
        for action, after in (("notified", 5), ("acknowledged", 90), ("resolved", 2400)):
            entry = TimelineEntry(ts + after, action)
            self.lines.extend(self.encoder.incident(IncidentChange(incident, entries=[entry])))

    def snapshots(self) -> None:
        processed = 0.0
        for i, ts in enumerate(self.times(60)):
            ns = int(ts * 1e9)
            for estate in ESTATES:
                for n, priority in enumerate(Priority):
                    self.add(self.encoder.incidents_open(estate, priority.value, (i // 30 + n) % 3, ns))
                if i % 15 == 0:
                    for period in ("day", "month", "rolling_24h"):
                        for name, value in KPIS.items():
                            self.add(self.encoder.kpi(estate, period, name, float(value), ns))
            processed += 60 * 25 + self.rng.randrange(100)
            health = {
                "queue_depth": self.rng.randrange(0, 40), "queue_high_water": 120,
                "items_processed": processed,
                "store_failures": i // 500, "core_errors": 0, "devices_online": 9, "devices_offline": 1,
                "incidents_opened": i // 30, "points_written": processed * 1.2, "points_dropped": i // 700,
                "points_spooled": 0, "spool_points": 0 if i % 200 > 10 else 350, "spool_bytes": 0,
                "lag_s": self.rng.uniform(0.2, 2.0), "write_errors": i // 400, "mqtt_connected": True,
            }  # fmt: skip
            self.add(self.encoder.gateway("gw-1", health, ns))


# -- what Grafana would send ---------------------------------------------------------------------
def dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(JSON_DIR.glob("*.json"))]


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # panels inside collapsed rows
    return found


def interpolate(query: str, variables: dict[str, str], start: int, end: int) -> str:
    text = query.replace("$timeFilter", f"time >= {start * 1000}ms and time <= {end * 1000}ms")
    text = text.replace("$__interval", INTERVAL).replace("$interval", INTERVAL)
    for name in sorted(variables, key=len, reverse=True):  # $device before $dev...
        text = text.replace(f"${name}", variables[name])
    assert not re.search(r"\$(?!tag_)\w", text), f"unresolved variable in {text}"
    return text


def resolve_variables(influx: InfluxProcess, board: dict[str, Any], start: int, end: int) -> dict[str, str]:
    """Each variable's query run in order, as Grafana does; multi/All becomes `(a|b)`."""
    values: dict[str, str] = {}
    for variable in board.get("templating", {}).get("list", []):
        query = interpolate(variable["query"], values, start, end)
        results = influx.query(query, DATABASE)
        found = sorted({row[1] for s in results[0].get("series", []) for row in s["values"]})
        assert found, f"{board['uid']}: variable {variable['name']} has no values ({query})"
        values[variable["name"]] = (
            "(" + "|".join(map(re.escape, found)) + ")" if variable["multi"] else found[0]
        )
    return values


def selected_columns(query: str) -> list[str]:
    """Column names InfluxDB gives the SELECT list: an alias, else the function's or the field's name."""
    select = re.search(r"SELECT (.*?) FROM ", query, re.S)
    assert select, query
    items, depth, current = [], 0, ""
    for char in select.group(1):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    columns = []
    for item in (i.strip() for i in items):
        alias = re.search(r'\sAS\s+"?(\w+)"?$', item)
        name = re.match(r'"?(\w+)"?', item)
        assert name, item
        columns.append(alias.group(1) if alias else name.group(1))
    return columns


@pytest.fixture(scope="module")
def influx() -> Iterator[tuple[InfluxProcess, int, int]]:
    end = int(time.time()) // 60 * 60
    with InfluxProcess() as server:
        server.create_database(DATABASE)
        server.write(DATABASE, Day(end).build())
        yield server, end - DAY, end + 60


def test_every_panel_query_returns_its_columns(influx: tuple[InfluxProcess, int, int]) -> None:
    server, start, end = influx
    checked = 0
    for board in dashboards():
        variables = resolve_variables(server, board, start, end)
        for panel in panels(board):
            for target in panel.get("targets", []):
                where = f"{board['uid']} / {panel['title']} / {target['refId']}"
                query = interpolate(target["query"], variables, start, end)
                results = server.query(query, DATABASE)
                series = results[0].get("series", [])
                assert series, f"{where}: no series for {query}"
                for column in selected_columns(query):
                    assert any(
                        column in s["columns"]
                        and any(r[s["columns"].index(column)] is not None for r in s["values"])
                        for s in series
                    ), f"{where}: no values in column {column!r}: {query} → {series[0]}"
                grouped = re.findall(r'GROUP BY .*?"(\w+)"', query)
                for tag in re.findall(r"\$tag_(\w+)", target.get("alias", "")):
                    assert tag in query.split("GROUP BY")[-1] or tag in grouped, f"{where}: alias tag {tag}"
                checked += 1
    assert checked >= 60, checked


# -- the JSON and the provisioning ----------------------------------------------------------------
def test_dashboard_json_is_valid() -> None:
    boards = dashboards()
    assert len(boards) == 6
    assert len({b["uid"] for b in boards}) == len(boards)
    for board in boards:
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] > 0
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), f"{board['uid']}: duplicate panel ids {ids}"
        for titled in (board, *panels(board)):
            assert re.search(r"[\u4e00-\u9fff].* / [A-Za-z]", titled["title"]), titled["title"]
        refs = [v["datasource"] for v in board["templating"]["list"]]
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            refs.append(panel["datasource"])
            assert panel["targets"], f"{board['uid']}: {panel['title']} has no query"
            refs.extend(t["datasource"] for t in panel["targets"])
            assert all(t["rawQuery"] and t["query"].startswith("SELECT ") for t in panel["targets"])
        assert all(ref == {"type": "influxdb", "uid": DATASOURCE_UID} for ref in refs), board["uid"]


def test_provisioning_points_at_the_datasource_and_the_json() -> None:
    yaml = YAML(typ="safe")
    sources = yaml.load((PROVISIONING / "datasources" / "influxdb.yaml").read_text(encoding="utf-8"))
    (source,) = sources["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["dbName"] == DATABASE and source["jsonData"]["version"] == "InfluxQL"
    assert source["url"].startswith("$") and source["secureJsonData"]["password"].startswith("$")
    providers = yaml.load((PROVISIONING / "dashboards" / "estate-gateway.yaml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/dashboards/json")  # this repository's dashboards/ mounted


def test_committed_json_is_what_the_code_generates() -> None:
    rendered = render_all()
    committed = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.json")}
    assert sorted(committed) == sorted(rendered)
    for name, text in rendered.items():
        assert committed[name] == text, f"dashboards/json/{name} differs: run python -m dashboards.generate"
