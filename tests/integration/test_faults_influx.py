"""InfluxDB (VictoriaMetrics) down for a long stretch under a running gateway: the alert path never waits
for it, /health shows the backlog, the spool stays within its bound, and afterwards every point arrives
once, in order.

What this proves, on real parts: the gateway (`App`, as `estate-gateway run` builds it) with
`influx.enabled` pointing at a private VictoriaMetrics (tests/integration/victoria.py) ingests QoS 1
state messages from 100 access gates through a real Mosquitto at 100 msgs/s, with a steady trickle of
alarm conditions (each gate's one `tamper: true`, about 3 a second). Three seconds in, VictoriaMetrics is
stopped for `GATEWAY_INFLUX_OUTAGE_S` seconds (default 20) and started again on the same port and data dir
while the stream goes on. Then:

- the pipeline never blocked: incident latency (payload timestamp → incident on the live feed) stays low
  during the outage, items keep flowing, the ingest queue stays shallow, and every alarm condition
  became exactly one incident;
- `/health` said what happened: `sink_lag_s` grew with the outage, `sink_write_errors` > 0,
  `sink_spool_points` > 0; the spool never went past `spool_max_bytes`;
- after the restart the spool drained (`sink_spool_points` 0, lag back under a few seconds, nothing
  dropped) and every `door_open` reading and every alarm transition is in VictoriaMetrics exactly once,
  with its timestamp, in the order written.

The issue's "InfluxDB down 10 minutes" is `GATEWAY_INFLUX_OUTAGE_S=600`; the default run uses 20 s to keep
the suite short. Run once with GATEWAY_INFLUX_OUTAGE_S=120 on the shared 2-core machine (131 s): 12,900
messages, 100 alarm conditions → 100 incidents, none twice; incident latency during the outage p50 1 ms,
max 3 ms; 11,990 items processed during it; peak sink_lag_s 120, spool 14,829 points / 1.5 MB (bound
8 MiB), 121 write errors; spool drained 6.1 s after the restart; 15,897 points written (14,932 replayed),
0 dropped; every door_open reading and alarm point read back once, in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.config import parse_config
from gateway.incidents import IncidentUpdate
from gateway.runtime.app import App
from gateway.runtime.broker import MosquittoProcess
from tests.integration.victoria import VictoriaProcess

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("GATEWAY_INFLUX_OUTAGE_S", "20"))
ESTATES, PER_ESTATE = 4, 25
RATE = 100.0  # state messages per second
BEFORE_S, AFTER_S = 3.0, 6.0  # stream time before the outage and after the restart
SPOOL_MAX = 8 * 1024 * 1024
RULE = "gate_tamper_state"


def _site(mqtt_port: int, db: Path, influx_url: str, spool: Path) -> str:
    lines = [
        "gateway_id: faults-influx",
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}, client_id: faults-influx-gw}}",
        f'store: {{path: "{db}"}}',
        "api: {enabled: false}",
        "incidents: {correlation_window: 0, flood_count: 100000}",
        "escalation: {enabled: false}",
        f'influx: {{enabled: true, url: "{influx_url}", spool_dir: "{spool}", spool_max_bytes: {SPOOL_MAX},',
        "  batch_size: 2000, flush_interval: 0.2, timeout: 1.0, retry_max: 1.0, fsync_interval: 0.5,",
        "  snapshot_interval: 1.0}",
        "rules:",
        f"  - {{id: {RULE}, kind: state, family: access_gate, point: tamper, values: [true],",
        "     priority: high, message: {zh: '{device} 防拆状态报警', en: 'Tamper state at {device}'}}",
        "estates:",
    ]
    for e in range(ESTATES):
        lines += [f"  - id: e{e}", f"    name: {{zh: 小区{e}, en: Estate {e}}}", "    devices:"]
        lines += [
            f'      - {{id: g{d:02d}, family: access_gate, profile: generic_access_gate, mqtt: {{topic: "estate/e{e}/access_gate/g{d:02d}/+"}}}}'  # noqa: E501
            for d in range(PER_ESTATE)
        ]
    return "\n".join(lines) + "\n"


class Sent:
    """What the publisher sent: per gate the `door_open` readings (ts ms, value) in order, and the
    alarm message's ts ms."""

    def __init__(self) -> None:
        self.readings: dict[str, list[tuple[int, float]]] = {}
        self.alarms: dict[str, int] = {}
        self.at: dict[str, float] = {}  # gate → monotonic time its alarm was sent
        # gate → the publisher's wall clock (ms) when its alarm was sent: a distinct-ms stamp runs ahead
        # of the wall clock when the paced loop catches up in a burst, and the core stamps a transition
        # with its own wall clock, so the alarm point may be up to that far before the payload's ts
        self.wall: dict[str, int] = {}


async def _publish(port: int, seconds: float, sent: Sent) -> None:
    """RATE msgs/s round-robin over the gates for `seconds`; gate i's alarm goes out at about
    i / gates of the way through, so alarms trickle all along. Every payload's ts is a distinct ms."""
    gates = [f"e{e}/g{d:02d}" for e in range(ESTATES) for d in range(PER_ESTATE)]
    total = int(RATE * seconds)
    alarm_at = {gates[i]: int(total * (i + 0.5) / len(gates)) for i in range(len(gates))}
    due = {n: g for g, n in alarm_at.items()}
    t0, last_ms = time.monotonic(), 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="faults-influx-pub", timeout=10) as client:
        for n in range(total):
            gate = due.get(n, gates[n % len(gates)])
            wall_ms = time.time_ns() // 1_000_000
            ms = max(wall_ms, last_ms + 1)
            last_ms = ms
            door = bool(n // len(gates) % 2)
            body: dict[str, Any] = {"door_open": door, "ts": ms / 1000}
            if n in due:
                body["tamper"] = True
                sent.alarms[gate], sent.at[gate], sent.wall[gate] = ms, time.monotonic(), wall_ms
            estate, device = gate.split("/")
            await client.publish(f"estate/{estate}/access_gate/{device}/state", json.dumps(body), qos=1)
            sent.readings.setdefault(gate, []).append((ms, float(door)))
            await asyncio.sleep(max(0.0, t0 + (n + 1) / RATE - time.monotonic()))


def _series(victoria: VictoriaProcess, match: str) -> dict[str, list[tuple[int, float]]]:
    """estate/device → its one series' samples (a second series for a gate fails the test)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in victoria.export(match):
        labels = row["metric"]
        key = f"{labels['estate']}/{labels['device']}"
        assert key not in out, f"two series for {key}: {labels}"
        out[key] = list(zip(row["timestamps"], row["values"], strict=True))
    return out


def _same_points(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    """Same count, same values, timestamps within 1 ms (seconds → ns → ms rounding), strictly ascending."""
    return (
        len(got) == len(want)
        and all(abs(g[0] - w[0]) <= 1 and g[1] == w[1] for g, w in zip(got, want, strict=True))
        and all(a[0] < b[0] for a, b in itertools.pairwise(got))
    )


def _ms(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000
        if len(values) >= 2
        else float("nan")
    )


@pytest.mark.timeout(OUTAGE_S + 120)
async def test_influx_outage_never_blocks_alarms_and_every_point_arrives_once(  # noqa: PLR0915
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    victoria = VictoriaProcess()
    victoria.start()
    config = parse_config(
        _site(broker.port, tmp_path / "gw.db", victoria.url, tmp_path / "spool"), "s.yaml", {}
    )
    app, stop = App(config), asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    latency: list[tuple[float, float, str]] = []  # (seen monotonic, latency s, alarm key)
    health: list[tuple[float, dict[str, Any]]] = []
    events: dict[str, float] = {}
    sent = Sent()

    async def feed() -> None:
        sub = app.live.subscribe(maxsize=100_000)
        while True:
            item: Any = await sub.get()
            body = getattr(item, "body", None)
            if isinstance(body, IncidentUpdate) and body.new:
                inc = body.incident
                latency.append((time.monotonic(), time.time() - inc.updated_at, inc.alarm_key))

    async def watch() -> None:
        while True:
            health.append((time.monotonic(), app.health()))
            await asyncio.sleep(0.25)

    async def outage() -> None:
        await asyncio.sleep(BEFORE_S)
        events["stopped"] = time.monotonic()
        await asyncio.to_thread(victoria.stop)
        await asyncio.sleep(max(0.0, events["stopped"] + OUTAGE_S - time.monotonic()))
        events["restart"] = time.monotonic()
        await asyncio.to_thread(victoria.start)
        events["up"] = time.monotonic()

    helpers: list[asyncio.Task[None]] = []
    try:
        for _ in range(300):  # bounded: 30 s
            if app.ready.is_set() and app.mqtt is not None and app.mqtt.connected:
                break
            assert not task.done(), task
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # subscriptions settle
        helpers = [asyncio.create_task(feed()), asyncio.create_task(watch())]
        fault = asyncio.create_task(outage())
        await _publish(broker.port, BEFORE_S + OUTAGE_S + AFTER_S, sent)
        await asyncio.wait_for(fault, 30)
        stream_end = time.monotonic()
        drained = None
        for _ in range(300):  # bounded: 60 s for the spool to drain
            h = app.health()
            if h["sink_spool_points"] == 0 and h["sink_queue_points"] == 0 and h["sink_lag_s"] < 2.0:
                drained = time.monotonic() - events["up"]
                break
            await asyncio.sleep(0.2)
        for _ in range(100):  # bounded: every alarm's incident on the feed
            if len({k for _, _, k in latency}) >= len(sent.alarms):
                break
            await asyncio.sleep(0.1)
        end = app.health()
        want = sum(len(v) for v in sent.readings.values())
        for _ in range(50):  # bounded: the stream's last batches reach VictoriaMetrics within a flush or two
            readings = await asyncio.to_thread(
                _series, victoria, '{__name__="access_gate_value",point="door_open"}'
            )
            if sum(len(v) for v in readings.values()) >= want:
                break
            await asyncio.sleep(0.3)
        alarms = await asyncio.to_thread(_series, victoria, '{__name__="alarm_active"}')
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        stop.set()
        await asyncio.wait_for(task, 30)
        victoria.close()

    down = [h for t, h in health if events["stopped"] + 1.0 <= t <= events["restart"]]
    lat_down = [s for t, s, _ in latency if events["stopped"] <= t <= events["restart"]]
    lat_up = [s for t, s, _ in latency if t < events["stopped"] or t > events["up"]]
    keys = [k for _, _, k in latency]
    items_down = (down[-1]["items_processed"] - down[0]["items_processed"]) if down else 0
    fields = ("sink_lag_s", "sink_spool_points", "sink_spool_bytes", "sink_write_errors", "queue_depth")
    peak = {k: max(float(h[k]) for _, h in health) for k in fields}
    sent_points = sum(len(v) for v in sent.readings.values())
    print(
        f"\ninflux (VictoriaMetrics) down {events['restart'] - events['stopped']:.1f}s mid-stream: "
        f"{sent_points} state messages at {RATE:.0f}/s, {len(sent.alarms)} alarm conditions, "
        f"{len(set(keys))} incidents ({len(keys) - len(set(keys))} twice); incident latency during the "
        f"outage p50 {_ms(lat_down, 50):.0f} ms p99 {_ms(lat_down, 99):.0f} ms max "
        f"{max(lat_down, default=0) * 1000:.0f} ms ({len(lat_down)} samples), outside it p99 "
        f"{_ms(lat_up, 99):.0f} ms; items during the outage {items_down}; peak {peak}; spool drained "
        f"{drained if drained is None else round(drained, 1)}s after the restart (stream ended "
        f"{stream_end - events['up']:.1f}s after it); written {end['sink_points_written']} "
        f"(replayed {end['sink_points_replayed']}), dropped {end['sink_points_dropped']}"
    )
    assert len(down) >= OUTAGE_S * 2, "too few health samples during the outage"
    # the alert path never waited for InfluxDB
    assert set(keys) == {f"{g}/{RULE}" for g in sent.alarms} and len(keys) == len(sent.alarms)
    seen_at = {k.rsplit("/", 1)[0]: t for t, _, k in latency}
    raised_down = [g for g, t in sent.at.items() if events["stopped"] <= t <= events["restart"] - 1.0]
    assert len(raised_down) >= 5, "too few alarm conditions fell inside the outage"
    late = [g for g in raised_down if seen_at[g] > events["restart"]]
    assert not late, f"alarms raised during the outage became incidents only after it: {late}"
    assert max(lat_down) < 2.0, f"incident latency during the outage went to {max(lat_down):.2f}s"
    assert items_down >= RATE * (OUTAGE_S - 2) * 0.8, "the pipeline slowed down while InfluxDB was away"
    assert peak["queue_depth"] < 200
    # /health said what happened, and the spool kept within its bound
    assert peak["sink_lag_s"] >= OUTAGE_S * 0.8 and peak["sink_write_errors"] > 0
    assert peak["sink_spool_points"] > 0 and peak["sink_spool_bytes"] <= SPOOL_MAX
    assert max(float(h["sink_lag_s"]) for h in down[-3:]) >= OUTAGE_S * 0.7  # lag grows through it
    # ...and that it is over, with nothing lost
    assert drained is not None, f"the spool did not drain: {end}"
    assert end["sink_points_dropped"] == 0 and end["sink_points_replayed"] > 0, end
    # every reading and alarm point, once, in order
    assert set(readings) == set(sent.readings)
    bad = [g for g, want in sent.readings.items() if not _same_points(readings[g], want)]
    assert not bad, f"{len(bad)} gates' readings differ, e.g. {bad[0]}: {readings[bad[0]][-3:]}"
    assert set(alarms) == set(sent.alarms)
    # one point per alarm, at the time the core saw it: after the publisher's wall clock at sending
    # (which a run-ahead distinct-ms stamp may lead by a few ms) and soon after the payload's ts: within
    # 500 ms (50 ms failed once, 58 ms, with the whole suite on both cores beside this test)
    wrong = {
        g: (alarms[g], ms)
        for g, ms in sent.alarms.items()
        if len(alarms[g]) != 1
        or alarms[g][0][1] != 1.0
        or not min(ms, sent.wall[g]) - 1 <= alarms[g][0][0] <= ms + 500
    }
    assert not wrong, f"alarm points (got, sent ms) differ: {list(wrong.items())[:5]}"
