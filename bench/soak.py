#!/usr/bin/env python3
"""Soak: 250 estates / 10,000 devices in one gateway process for a bounded time, a table row every 10 s.

    .venv/bin/python bench/soak.py                   # 10 min after a 30 s warm-up, 10 s rows
    .venv/bin/python bench/soak.py --minutes 3
    .venv/bin/python bench/soak.py --quick           # 25 estates / 1,000 devices, ~45 s, 5 s rows

The fleet is scale.py's (bench/fleet.py: 5 % Modbus devices on child pymodbus servers, the rest MQTT
access gates with a heartbeat every 30 s, a private Mosquitto). The gateway is the real daemon,
`estate-gateway run site.yaml`, in a child process, so every figure is that process's own: RSS
(/proc/PID/statm), CPU % of one core (utime + stime from /proc/PID/stat over the row's interval), and from
its `/health`: ingest queue depth and high water, pipeline items, incidents opened, MQTT connected.

Alarms: the paced publisher (bench/paced.py, its own process, QoS 1) puts a steady trickle of alarm
conditions among the heartbeats (`--alarms-per-s`, default 3): a gate's
`{"tamper": true, "ts": <publisher wall clock>}`, which the site rule `soak_gate_tamper` turns into one
incident, cleared by the gate 2 s later; at the next row the soak resolves the incidents it saw, through
the API as an operator would, and the alarms go round a pool of gates, so the workload is stationary
(`--no-resolve` leaves incidents open and puts each alarm on a new gate: RSS then grows with the open
incidents and their escalation ladders, which the gateway keeps in memory by design). A WebSocket
client of `/feed/ws` (bearer token, its own process) stamps each new incident on receipt: latency =
receipt − the incident's `updated_at` (the payload's ts), p50/p99 per row. At the end:
every alarm condition must have produced exactly one incident (lost 0, duplicates 0: else exit 1),
the RSS slope after warm-up (MiB/min, least squares over 1 s samples) with the verdict "no growth trend"
(≤ 1 MiB/min, bench/README.md) or not, the baseline (RSS right after warm-up) and the machine. The last
line printed is JSON (bench/run.py's `soak` measurement reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from child import BenchError, child_reply, close_child
from fleet import HOST, Fleet, FleetServers, slope_mib_per_min
from machine import cpu_model, version_of
from paced import PacedPublisher
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.runtime import memtrace
from gateway.runtime.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-soak-operator-token-0123456789"
RULE = "soak_gate_tamper"
NO_GROWTH_MIB_PER_MIN = 1.0


def site_yaml(mqtt_port: int, api_port: int, ports: list[int], fleet: Fleet, store: Path) -> str:
    lines = [
        "gateway_id: bench-soak",
        f"mqtt: {{host: {HOST}, port: {mqtt_port}, client_id: bench-soak-{os.getpid()}}}",
        f'store: {{path: "{store}"}}',
        f"api: {{host: {HOST}, port: {api_port}, tokens: "
        f'[{{name: soak, token: "{TOKEN}", role: operator, estates: ["*"]}}]}}',
        "incidents: {correlation_window: 0, flood_count: 1000000}",
        "rules:",
        f"  - {{id: {RULE}, kind: state, family: access_gate, point: tamper, values: [true],",
        "     priority: high, message: {zh: '{device} 防拆报警', en: 'Tamper at {device}'}}",
        *fleet.estates_yaml(ports, gate_extra=" heartbeat_timeout: 600,"),
    ]
    return "\n".join(lines) + "\n"


ALARM = '{"tamper": true, "ts": {t}}'
CLEAR = '{"tamper": false, "ts": {t}}'


def workload(
    fleet: Fleet, seconds: float, heartbeat: float, alarms_per_s: float, pool: int, clear_after: float = 2.0
) -> tuple[list[tuple[str, str]], float, Counter[str]]:
    """Heartbeats round-robin over the gates plus an alarm every 1/alarms_per_s s, on the next of `pool`
    gates in turn (estates interleaved), and its clear `clear_after` s later; the messages, the rate to
    send them at, and how many alarm conditions each alarm key gets. A gate comes round again after
    pool / alarms_per_s s: by then its incident must have been resolved, so the next one is a new one
    (with `pool` = every gate, no gate comes round twice)."""
    gates = fleet.gate_ids()
    rate = len(gates) / heartbeat + 2 * alarms_per_s
    total = int(rate * seconds)
    alarms = int(alarms_per_s * (seconds - clear_after - 1))
    if pool >= len(gates):
        alarms = min(alarms, len(gates))
    order = sorted(gates, key=lambda g: (g[1], g[0]))[:pool]  # g000 of every estate, then g001, ...
    special: dict[int, tuple[str, str, str]] = {}
    for k in range(alarms):
        at = int((k + 0.5) * (total - rate * (clear_after + 1)) / alarms)
        for wanted, body in ((at, ALARM), (at + int(rate * clear_after), CLEAR)):
            slot = wanted
            while slot in special:  # bounded: at most 2 × alarms slots are taken
                slot += 1
            special[slot] = (*order[k % len(order)], body)
    work = []
    for i in range(total):
        if i in special:
            estate, device, body = special[i]
            work.append((f"estate/{estate}/access_gate/{device}/state", body))
        else:
            estate, device = gates[i % len(gates)]
            work.append((f"estate/{estate}/access_gate/{device}/heartbeat", "{}"))
    return work, rate, Counter(f"{e}/{d}/{RULE}" for e, d in (order[k % len(order)] for k in range(alarms)))


# -- the live feed, from a WebSocket client in its own process ------------------------------------


def _probe_main(url: str, token: str, conn: Connection) -> None:
    """Collect (receipt, updated_at, alarm key) of every new incident; hand them over on "take"."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    samples: list[tuple[float, float, str, int]] = []
    resyncs = 0
    try:
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=20) as ws:
            if json.loads(ws.recv(timeout=20)).get("type") != "hello":
                raise BenchError("the feed did not say hello")
            if json.loads(ws.recv(timeout=20)).get("type") != "resync":  # no `since`: "start from now"
                raise BenchError("the feed did not tell a new client where to start")
            conn.send(("ready", None))
            while True:
                while conn.poll():
                    command = conn.recv()
                    conn.send(("samples", (samples, resyncs)))
                    samples, resyncs = [], 0
                    if command == "stop":
                        return
                try:
                    raw = ws.recv(timeout=0.1)
                except TimeoutError:
                    continue
                now = time.time()
                msg = json.loads(raw)
                if msg.get("type") == "resync":
                    resyncs += 1
                elif msg.get("type") == "incident" and msg.get("new"):
                    inc = msg["incident"]
                    key = f"{inc['estate']}/{inc['device']}/{inc['rule']}"
                    samples.append((now, float(inc["updated_at"]), key, int(inc["id"])))
    except (BenchError, ConnectionClosed, OSError, TimeoutError, EOFError) as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"feed client: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class FeedProbe:
    def __init__(self, url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_probe_main, args=(url, TOKEN, child_conn), name="bench-soak-feed")
        self._child_conn = child_conn

    async def start(self) -> None:
        self.proc.start()
        self._child_conn.close()
        await asyncio.to_thread(child_reply, self.conn, self.proc, "feed client", 30, "ready")

    async def take(self, command: str = "take") -> tuple[list[tuple[float, float, str, int]], int]:
        self.conn.send(command)
        got: tuple[list[tuple[float, float, str, int]], int] = await asyncio.to_thread(
            child_reply, self.conn, self.proc, "feed client", 20, "samples"
        )
        return got

    def close(self) -> None:
        close_child(self.conn, self.proc)


# -- the gateway child process ---------------------------------------------------------------------


class Gateway:
    """`estate-gateway run site.yaml` as a child; its /proc figures and /health."""

    def __init__(self, site: Path, api_port: int, log: Path, snapshots: Path | None = None) -> None:
        self.api = f"http://{HOST}:{api_port}"
        self.log = log
        self.snapshots = snapshots
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if snapshots is not None:
            env[memtrace.DIR_ENV] = str(snapshots)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.runtime.cli", "--log-level", "ERROR", "run", str(site)],
                cwd=site.parent, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.http = httpx.AsyncClient(base_url=self.api, timeout=5)
        self._tick = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")

    async def snapshot(self, number: int) -> Path:
        """Ask the child for heap snapshot `number` (SIGUSR2) and wait until it is written."""
        assert self.snapshots is not None
        path = self.snapshots / f"snapshot-{number}.pickle"
        self.proc.send_signal(signal.SIGUSR2)
        for _ in range(600):  # bounded: 60 s (a 10,000-device heap takes seconds to pickle)
            if path.exists():
                return path
            self.alive()
            await asyncio.sleep(0.1)
        raise BenchError(f"no heap snapshot {path} within 60 s")

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"gateway exited with {self.proc.returncode}: {self.tail()}")

    def rss_mib(self) -> float:
        return int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1]) * self._page / 2**20

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime (fields 14 and 15)

    async def health(self) -> dict[str, Any]:
        response = await self.http.get("/health")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def ready(self, within: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < within:
            self.alive()
            with contextlib.suppress(httpx.HTTPError):
                if (await self.health()).get("mqtt_connected"):
                    return time.monotonic() - t0
            await asyncio.sleep(0.25)
        raise BenchError(f"gateway not connected within {within:g}s: {self.tail()}")

    async def stop(self) -> int:
        await self.http.aclose()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 10)
        return self.proc.returncode

    async def incidents(self) -> list[dict[str, Any]]:
        """Every incident in the store, from the REST API page by page (bounded: 100,000)."""
        found: list[dict[str, Any]] = []
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for page in range(100):
            params = {"limit": 1000, "offset": page * 1000}
            response = await self.http.get("/incidents", params=params, headers=headers, timeout=30)
            response.raise_for_status()
            batch: list[dict[str, Any]] = response.json()
            found += batch
            if len(batch) < 1000:
                break
        return found

    async def resolve(self, ids: list[int]) -> int:
        """Resolve incidents as the operator would (cause "test"); how many the API accepted."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        done = 0
        for incident_id in ids:
            response = await self.http.post(
                f"/incidents/{incident_id}/resolve", json={"cause": "test"}, headers=headers
            )
            done += response.status_code == 200
        return done

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""


# -- the table -------------------------------------------------------------------------------------

COLUMNS = (
    ("elapsed s", 9), ("RSS MiB", 8), ("CPU %", 6), ("queue", 6), ("q high", 7), ("items", 10),
    ("incidents", 9), ("lat n", 6), ("p50 ms", 7), ("p99 ms", 7), ("MQTT", 5),
)  # fmt: skip


@dataclass
class Row:
    elapsed: float
    rss: float
    cpu: float
    queue: int
    high: int
    items: int
    incidents: int
    latencies_ms: list[float]
    mqtt: bool
    warm: bool  # taken during the warm-up

    def cells(self) -> list[str]:
        lat = self.latencies_ms
        return [
            f"{self.elapsed:.0f}{'*' if self.warm else ''}", f"{self.rss:.1f}", f"{self.cpu:.0f}",
            str(self.queue), str(self.high), f"{self.items:,}", str(self.incidents), str(len(lat)),
            f"{pct(lat, 50):.0f}" if lat else "-", f"{pct(lat, 99):.0f}" if lat else "-",
            "yes" if self.mqtt else "NO",
        ]  # fmt: skip


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def print_row(cells: list[str]) -> None:
    print("  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)), flush=True)


@dataclass
class Soak:
    rows: list[Row] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since warm-up, MiB), each second
    seen: dict[str, int] = field(default_factory=dict)  # alarm key → new incidents on the feed
    latencies_ms: list[float] = field(default_factory=list)  # after warm-up
    resyncs: int = 0
    resolved: int = 0
    baseline: float = 0.0
    ring: list[tuple[float, int, int]] = field(default_factory=list)  # (s, feed seq, replay capacity) a row
    snapshots: list[Path] = field(default_factory=list)  # --tracemalloc: warm-up end, half-way, end


async def sample(gateway: Gateway, feed: FeedProbe, args: argparse.Namespace, soak: Soak) -> None:
    """A row every `interval` s (1 s RSS samples between) until warm-up + minutes have passed."""
    t0 = time.monotonic()
    end = t0 + args.warmup + args.minutes * 60
    cpu_prev, at_prev = gateway.cpu_s(), t0
    next_row = t0 + args.interval
    warm_done = False
    while (now := time.monotonic()) < end + 0.5:
        gateway.alive()
        if not warm_done and now - t0 >= args.warmup:
            warm_done, soak.baseline = True, gateway.rss_mib()
            if args.tracemalloc:
                soak.snapshots.append(await gateway.snapshot(1))
        if args.tracemalloc and len(soak.snapshots) == 1 and now - t0 >= args.warmup + args.minutes * 30:
            soak.snapshots.append(await gateway.snapshot(2))  # half-way: the second half shows steady state
        if warm_done:
            soak.rss.append((now - t0 - args.warmup, gateway.rss_mib()))
        if now >= next_row:
            next_row += args.interval
            cpu, health = gateway.cpu_s(), await gateway.health()
            soak.ring.append((now - t0, int(health["feed_seq"]), int(health["feed_replay_capacity"])))
            samples, resyncs = await feed.take()
            soak.resyncs += resyncs
            lat = [(r - u) * 1000 for r, u, _, _ in samples]
            for _, _, key, _ in samples:
                soak.seen[key] = soak.seen.get(key, 0) + 1
            if args.resolve:  # the incidents of the last interval, as an operator would
                soak.resolved += await gateway.resolve([i for _, _, k, i in samples if k.endswith(RULE)])
            warm = now - t0 <= args.warmup
            if not warm:
                soak.latencies_ms += lat
            row = Row(
                now - t0, gateway.rss_mib(), 100 * (cpu - cpu_prev) / (now - at_prev),
                int(health["queue_depth"]), int(health["queue_high_water"]), int(health["items_processed"]),
                int(health["incidents_opened"]), lat, bool(health["mqtt_connected"]), warm,
            )  # fmt: skip
            cpu_prev, at_prev = cpu, now
            soak.rows.append(row)
            print_row(row.cells())
        await asyncio.sleep(max(0.0, min(1.0, next_row - time.monotonic())))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fleet = Fleet.build(args.devices, args.estates, args.modbus_share)
    # resolved incidents: a pool of gates that come round every 3 rows + 12 s, so memory per alarmed gate
    # (chart ring, alarm state) is not mistaken for growth; --no-resolve: every alarm on a new gate
    pool = math.ceil(args.alarms_per_s * (3 * args.interval + 12)) if args.resolve else fleet.gates
    work, rate, alarm_keys = workload(
        fleet, args.warmup + args.minutes * 60 + 2, args.heartbeat, args.alarms_per_s, pool
    )
    servers = FleetServers(fleet)
    soak = Soak()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        api_port = free_port()
        site = Path(tmp) / "soak.yaml"
        gateway: Gateway | None = None
        feed: FeedProbe | None = None
        publisher: PacedPublisher | None = None
        try:
            await servers.start()
            site.write_text(
                site_yaml(servers.broker.port, api_port, servers.ports, fleet, Path(tmp) / "soak.db")
            )
            snapshots = Path(tmp) / "heap" if args.tracemalloc else None
            gateway = Gateway(site, api_port, Path(tmp) / "gateway.log", snapshots)
            ready_s = await gateway.ready(180)
            rss_ready = gateway.rss_mib()
            feed = FeedProbe(f"ws://{HOST}:{api_port}/feed/ws")
            await feed.start()
            print(
                f"soak: {fleet.gates + fleet.modbus:,} devices in {fleet.estates} estates"
                f" ({fleet.modbus} Modbus, {fleet.gates:,} MQTT gates, heartbeat every {args.heartbeat:g} s),"
                f" {args.alarms_per_s:g} alarm conditions/s on {len(alarm_keys)} gates,"
                f" {rate:.0f} msgs/s QoS 1;"
                f" resolved by the soak: {'yes' if args.resolve else 'no'}; gateway pid"
                f" {gateway.proc.pid} ready in {ready_s:.1f} s at {rss_ready:.0f} MiB;"
                f" warm-up {args.warmup:g} s (rows marked *), then {args.minutes:g} min"
            )
            print_row([name for name, _ in COLUMNS])
            publisher = PacedPublisher(servers.broker.port, "bench-soak-pub", work, rate, qos=1)
            publisher.start()
            await sample(gateway, feed, args, soak)
            published = await asyncio.to_thread(publisher.result)
            publisher = None
            for _ in range(100):  # bounded: 20 s for the last alarms to reach the feed
                samples, resyncs = await feed.take()
                soak.resyncs += resyncs
                for _, _, key, _ in samples:
                    soak.seen[key] = soak.seen.get(key, 0) + 1
                if all(soak.seen.get(k, 0) >= n for k, n in alarm_keys.items()):
                    break
                await asyncio.sleep(0.2)
            health = await gateway.health()
            rss_end = gateway.rss_mib()
            if args.tracemalloc:
                soak.snapshots.append(await gateway.snapshot(len(soak.snapshots) + 1))
                print_heap_growth(soak.snapshots)
            stored = Counter(f"{i['estate']}/{i['device']}/{i['rule']}" for i in await gateway.incidents())
        finally:
            if publisher is not None:
                publisher.close()
            if feed is not None:
                feed.close()
            code = await gateway.stop() if gateway is not None else 0
            await servers.stop()
    return report(args, fleet, soak, alarm_keys, stored, health, published.sent, (rss_ready, rss_end), code)


def print_heap_growth(snapshots: list[Path]) -> None:
    """What grew in the Python heap: over the whole soak, then over its second half alone."""
    pairs = [("whole soak", snapshots[0], snapshots[-1])]
    if len(snapshots) == 3:
        pairs.append(("second half", snapshots[1], snapshots[2]))
    for label, old, new in pairs:
        print(f"heap growth (tracemalloc), {label}:")
        for line in memtrace.compare(old, new, top=25 if label == "second half" else 12, chains=4):
            print(f"  {line}")


def report(
    args: argparse.Namespace, fleet: Fleet, soak: Soak, alarm_keys: Counter[str], stored: Counter[str],
    health: dict[str, Any], sent: int, rss: tuple[float, float], code: int,
) -> dict[str, Any]:  # fmt: skip
    """The summary lines and the JSON figures. Loss and duplicates are counted in the store (REST): the
    feed may drop items for a slow client (it says so with a resync), the store never does."""
    rss_ready, rss_end = rss
    slope = slope_mib_per_min(soak.rss)
    lost = sum(max(0, n - stored[k]) for k, n in alarm_keys.items())
    duplicates = sum(max(0, stored[k] - n) for k, n in alarm_keys.items())
    others = {k: n for k, n in stored.items() if k not in alarm_keys}
    # stored but never on the feed (the feed dropped them for a slow client and said so with a resync)
    unseen = sum(max(0, n - soak.seen.get(k, 0)) for k, n in alarm_keys.items())
    conditions = sum(alarm_keys.values())
    print_row(["baseline", f"{soak.baseline:.1f}", *[""] * (len(COLUMNS) - 2)])
    verdict = "no growth trend" if slope <= NO_GROWTH_MIB_PER_MIN else "GROWTH TREND"
    # The live feed's replay ring is bounded (10,000 items) and full within seconds of the start (every
    # device's first state), but its start-up items are small: until each has been replaced by a
    # steady-state one (incident changes with their timeline entries, device values) its bytes grow,
    # at the feed's pace. Say when it had turned over once, so the slope can be read against it.
    turned_at = None
    if soak.ring:
        _, first_seq, cap = soak.ring[0]
        turned_at = next((t for t, seq, _ in soak.ring if seq - first_seq >= cap), None)
        ring = (
            f"turned over once (every start-up item replaced) at {turned_at:.0f} s"
            if turned_at is not None
            else f"not turned over yet: {soak.ring[-1][1] - first_seq:,}/{cap:,} items replaced at the end"
        )
        if turned_at is None or turned_at > args.warmup:
            ring += f"; after the warm-up ({args.warmup:g} s): its growth is part of the slope"
        print(f"live feed replay ring ({cap:,} items): {ring}")
    if args.tracemalloc:  # tracemalloc keeps a record of its own for every live block
        verdict += "; with tracemalloc on, which adds its own memory per live block: no verdict"
    span = soak.rss[-1][0] / 60 if soak.rss else 0.0
    print(
        f"RSS slope after warm-up: {slope:+.2f} MiB/min over {span:.1f} min ({len(soak.rss)} samples):"
        f" {verdict} (threshold {NO_GROWTH_MIB_PER_MIN:g} MiB/min); RSS baseline {soak.baseline:.1f} MiB,"
        f" end {rss_end:.1f} MiB, max {max(r.rss for r in soak.rows):.1f} MiB"
    )
    lat = soak.latencies_ms
    other_rules = sorted({k.rsplit("/", 1)[1] for k in others})
    print(
        f"alarms: {conditions} published on {len(alarm_keys)} gates, {sum(stored[k] for k in alarm_keys)}"
        f" incidents stored, lost {lost}, duplicates {duplicates}; on the feed unseen {unseen};"
        f" other incidents {sum(others.values())} (rules: {', '.join(other_rules) or '-'});"
        f" /health incidents_opened {health['incidents_opened']}; latency"
        f" after warm-up p50 {pct(lat, 50):.0f} ms p99 {pct(lat, 99):.0f} ms max {max(lat, default=0):.0f} ms"
        f" ({len(lat)} samples); resolved through the API {soak.resolved}; feed resyncs {soak.resyncs};"
        f" messages {sent:,}; gateway exit {code}"
    )
    load = os.getloadavg()
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, pymodbus"
        f" {version_of('pymodbus')}, websockets {version_of('websockets')}, load avg {load[0]:.2f}"
        f" {load[1]:.2f} {load[2]:.2f} (at the end)"
    )
    soaked = [r for r in soak.rows if not r.warm]
    result = {
        "devices": fleet.gates + fleet.modbus, "estates": fleet.estates, "modbus": fleet.modbus,
        "minutes": args.minutes, "rows": len(soak.rows),
        "rows_with_latency": sum(1 for r in soaked if r.latencies_ms), "soak_rows": len(soaked),
        "rss_ready_mib": rss_ready, "rss_warm_mib": soak.baseline, "rss_end_mib": rss_end,
        "rss_max_mib": max(r.rss for r in soak.rows), "slope_mib_per_min": slope,
        "no_growth": slope <= NO_GROWTH_MIB_PER_MIN,
        "feed_ring_turned_over_at_s": turned_at,
        "cpu_pct_mean": statistics.fmean(r.cpu for r in soaked) if soaked else 0.0,
        "queue_high_water": int(health["queue_high_water"]),
        "latency_p50_ms": pct(lat, 50), "latency_p99_ms": pct(lat, 99), "latency_samples": len(lat),
        "alarms": conditions, "alarm_gates": len(alarm_keys), "lost": lost, "duplicates": duplicates,
        "unseen_on_feed": unseen,
        "other_incidents": sum(others.values()), "incidents_opened": int(health["incidents_opened"]),
        "feed_resyncs": soak.resyncs, "resolved": soak.resolved, "gateway_exit": code,
    }  # fmt: skip
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="25 estates / 1,000 devices, ~45 s, 5 s rows")
    parser.add_argument("--minutes", type=float, help="soak after the warm-up (default 10; quick 0.5)")
    parser.add_argument("--interval", type=float, help="seconds between rows (default 10; quick 5)")
    parser.add_argument("--warmup", type=float, help="seconds before the baseline (default 30; quick 10)")
    parser.add_argument("--devices", type=int, help="default 10,000; quick 1,000")
    parser.add_argument("--estates", type=int, help="default 250; quick 25")
    parser.add_argument("--modbus-share", type=float, default=0.05)
    parser.add_argument("--heartbeat", type=float, default=30.0, help="s between a gate's heartbeats")
    parser.add_argument("--alarms-per-s", type=float, default=3.0)
    parser.add_argument(
        "--tracemalloc", action="store_true",
        help="trace the gateway's heap (slows it) and print what grew, whole soak and second half",
    )  # fmt: skip
    parser.add_argument(
        "--no-resolve", dest="resolve", action="store_false",
        help="leave every incident open (by default the soak resolves each one at the next row)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    defaults = (0.5, 5.0, 10.0, 1_000, 25) if args.quick else (10.0, 10.0, 30.0, 10_000, 250)
    for name, value in zip(("minutes", "interval", "warmup", "devices", "estates"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except BenchError as exc:
        print(f"soak: invalid run: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    if result["lost"] or result["duplicates"]:
        print(f"soak: {result['lost']} alarms lost, {result['duplicates']} duplicates", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
