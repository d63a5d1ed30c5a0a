"""The whole metrics path in a running gateway: simulators → drivers → alert core → incidents → KPI engine
→ InfluxDB sink → a real VictoriaMetrics, and the same KPIs through the API.

A fire point goes into alarm on the simulated panel; the reading, the alarm transition, the incident, the
open-incident snapshot, the KPI values and the gateway's own health must all arrive in the server under
the names the dashboards query (gateway/sinks/lines.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.runtime.broker import MosquittoProcess
from tests.integration.stack import estate_stack
from tests.integration.victoria import VictoriaProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def victoria() -> Iterator[VictoriaProcess]:
    with VictoriaProcess() as process:
        yield process


def _influx(url: str, spool: Path) -> str:
    return f"""\
influx:
  enabled: true
  url: {url}
  spool_dir: "{spool}"
  flush_interval: 0.2
  snapshot_interval: 0.5
  kpi_interval: 0.5
"""


def _names(victoria: VictoriaProcess) -> dict[str, list[dict[str, str]]]:
    victoria.flush()
    out: dict[str, list[dict[str, str]]] = {}
    for series in victoria.export():
        labels = dict(series["metric"])
        out.setdefault(labels.pop("__name__"), []).append(labels)
    return out


async def test_a_fire_alarm_reaches_influx_as_reading_alarm_incident_and_kpis(
    broker: MosquittoProcess, tmp_path: Path, victoria: VictoriaProcess
) -> None:
    async with estate_stack(broker, tmp_path, rules=_influx(victoria.url, tmp_path / "spool")) as s:
        panel = s.host.models["fire-1"]
        panel.values["L1-D003.fire"] = True
        await s.until(lambda: s.opened("fire_point_fire"), 5, "fire incident")

        wanted = {
            "fire_panel_value": {"estate": "sunshine", "device": "fire-1", "point": "L1-D003.fire"},
            "alarm_active": {"estate": "sunshine", "device": "fire-1", "rule": "fire_point_fire"},
            "incident_count": {"estate": "sunshine", "event": "opened", "priority": "critical"},
            "incidents_open_count": {"estate": "sunshine", "priority": "critical"},
            "kpi_value": {"estate": "sunshine", "kpi": "fire_alarms", "period": "day"},
        }

        def arrived(names: dict[str, list[dict[str, str]]]) -> list[str]:
            missing = []
            for name, labels in wanted.items():
                if not any(labels.items() <= series.items() for series in names.get(name, [])):
                    missing.append(name)
            if not any(n.startswith("gateway_") for n in names):
                missing.append("gateway_*")
            return missing

        deadline = time.monotonic() + 10
        missing = arrived(_names(victoria))
        while missing and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            missing = arrived(_names(victoria))
        assert not missing, f"not in VictoriaMetrics after 10 s: {missing}"

        reply = await s.api("GET", "/kpis?estate=sunshine&period=day", role="viewer")
        assert reply.status_code == 200, reply.text
        [today] = reply.json()
        assert today["values"]["fire_alarms"] == 1
        assert today["values"]["fire_intact_rate"] == 100.0  # an alarm is not a fault
        assert s.app is not None and s.app.sink is not None
        health = s.app.health()
        assert health["sink_points_written"] > 0
        assert health["sink_points_dropped"] == 0
