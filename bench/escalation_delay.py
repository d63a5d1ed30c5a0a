#!/usr/bin/env python3
"""Escalation delay: from an escalation step's due time to its notification arriving at a local webhook
receiver, through the gateway's real path, beside a bare asyncio scheduler posting to the same receiver.

What is measured
    * baseline: one asyncio loop that sleeps until each due time (``asyncio.sleep``) and POSTs a
      notification JSON body (built beforehand by the gateway's own ``notification_json``) with one
      ``httpx.AsyncClient``: one request per incident and step, no store, no grouping. The floor of
      what any scheduler on this machine could do;
    * gateway: ``gateway.runtime.app.App`` from a GatewayConfig (SQLite in a temp dir, API off, no
      devices) with escalation on: a site policy with a shrunk ladder (steps at 0, 1 and 2 s, one role
      each from the estate's duty roster) over one webhook channel. Incidents are opened for real by
      feeding alarm transitions to ``app.service.apply`` (the alert core's output, committed to SQLite
      by the IncidentService); from there it is the real path: the engine's tick → plan rows in SQLite
      → claim due rows → roster → grouping → ``deliver`` → ``WebhookChannel`` (signed POST) → timeline.

    Delay = arrival time at the receiver − (incident opened_at + the step's ``after``), per incident and
    step (a grouped message counts once for each incident in it). opened_at and the arrival stamp are
    both ``time.time()`` on this machine.

Workload
    (a) spaced: N incidents, one every S s (default 50 every 0.3 s), ``group_interval: 0``; every step
        of each incident is one message.
    (b) burst: B incidents in T s (default 200 in 2 s), twice: with ``group_interval: 0`` and with the
        default ``group_interval``; messages per person and the delay of each (incident, step).
    Correlation and the estate flood incident are off (``incidents.correlation_window: 0``, a large
    ``flood_count``), so every transition opens its own incident and the engine sees B incidents.

The receiver runs in a child process (multiprocessing, spawn): a minimal HTTP/1.1 server on a free port of
127.0.0.1 (keep-alive, answers 200 at once) that stamps each request when its body has arrived. In the
gateway's own process the stamp would wait for the gateway's event loop, and the receiver's parsing would
run on it; in a child the stamp is taken on an idle loop, as a real receiver would take it. Before the
first run, one warm-up POST pays this process's one-off httpx set-up (about 15 ms on the first request).

Order: (a) baseline, (a) gateway, (b) baseline, (b) gateway with group_interval 0, then with the default;
a fresh App and SQLite file per gateway run. --quick (10 and 50 incidents) takes about 30 s: the default
group_interval (10 s) holds the rest of the burst that long, so that run alone needs 13 s.

Validity (exit 1 with a one-line reason otherwise): every (incident, step) reached the receiver exactly
once, addressed to the person on duty in that step's role; the engine counted no failed notification and
no step with nobody on duty; every incident transition opened exactly one new incident; the baseline got
200 for every POST.

Run:  .venv/bin/python bench/escalation_delay.py [--quick] [--tick S] [--incidents N] [--burst B]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import resource
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from child import BenchError, child_reply, serve_commands
from machine import cpu_model, version_of  # bench/machine.py: run as a script, bench/ is on sys.path

from gateway.alerts import Transition
from gateway.config import ConfigError, parse_config
from gateway.config.escalation import EscalationConfig
from gateway.escalation.channels.payload import notification_json
from gateway.escalation.types import Notification, Person
from gateway.model import Priority
from gateway.runtime.app import App

HOST = "127.0.0.1"
ESTATE = "bench"
LADDER = (0.0, 1.0, 2.0)  # the shrunk ladder: steps due this long after the incident opened
ROLES = ("control_room", "duty_manager", "estate_manager")
PEOPLE = ("li", "wang", "chen")  # on duty in ROLES, 24 h
DEFAULT_GROUP_INTERVAL = float(EscalationConfig.model_fields["group_interval"].default)
DEFAULT_TICK = float(EscalationConfig.model_fields["tick"].default)
ATTEMPTS = int(EscalationConfig.model_fields["attempts"].default)
CHILD_TIMEOUT = 15.0  # s for the receiver child to start, answer or stop
SETTLE = 0.5  # s to wait after the last expected notification, to catch duplicates
REPLY = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


# -- the receiver, in a child process ---------------------------------------------------------------


def _receiver_main(conn: Connection) -> None:
    """Child process: serve on a free port, report it, answer `dump` until `stop` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    try:
        asyncio.run(_receive(conn))
    finally:
        conn.close()


async def _receive(conn: Connection) -> None:
    raw: list[tuple[float, str, bytes]] = []  # (arrival, target, body), parsed only when dumped

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: httpx reuses the connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                raw.append((time.time(), lines[0].split(" ")[1], body))
                writer.write(REPLY)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(serve, HOST, 0)
    except OSError as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", server.sockets[0].getsockname()[1]))

    def dump() -> tuple[str, Any]:
        records = [_parse(arrival, target, body) for arrival, target, body in raw]
        raw.clear()
        return "records", (records, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    try:
        await serve_commands(conn, {"dump": dump})
    finally:
        server.close()
        with contextlib.suppress(OSError):
            conn.send(("stopped", None))


def _parse(arrival: float, target: str, body: bytes) -> tuple[float, str, str, int, list[int]]:
    """A plain tuple: a class defined in this script pickles as __mp_main__.X, unknown to the parent."""
    try:
        doc = json.loads(body)
        note = doc["notification"]
        return arrival, target, str(doc["person"]), int(note["step"]), [int(i) for i in note["incident_ids"]]
    except (ValueError, KeyError, TypeError):
        return arrival, target, "?", -1, []


@dataclass(frozen=True)
class Record:
    arrival: float
    target: str
    person: str
    step: int
    incident_ids: list[int]


class Receiver:
    """The HTTP receiver in a spawned child process, driven over a pipe."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_receiver_main, args=(child_conn,), name="bench-receiver", daemon=True)
        self._child_conn = child_conn
        self.port = 0
        self.peak_rss_mib = 0.0

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def _reply(self, expect: str) -> Any:
        return child_reply(self.conn, self.proc, "receiver process", CHILD_TIMEOUT, expect)

    async def start(self) -> None:
        self.proc.start()
        self._child_conn.close()
        self.port = int(await asyncio.to_thread(self._reply, "ready"))

    async def dump(self) -> list[Record]:
        """The requests received since the last dump."""
        self.conn.send("dump")
        records, rss_kib = await asyncio.to_thread(self._reply, "records")
        self.peak_rss_mib = rss_kib / 1024
        return [Record(*r) for r in records]

    async def stop(self) -> None:
        """Ask the child to stop; terminate it (by its own handle) if it does not."""
        if self.proc.pid is None:
            return
        with contextlib.suppress(OSError, BenchError):
            self.conn.send("stop")
            await asyncio.to_thread(self._reply, "stopped")
        await asyncio.to_thread(self.proc.join, CHILD_TIMEOUT)
        if self.proc.is_alive():
            self.proc.terminate()
            await asyncio.to_thread(self.proc.join, CHILD_TIMEOUT)
        self.conn.close()


# -- workload and results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    incidents: int
    spacing: float  # s between two incidents opening
    group_interval: float = 0.0

    @property
    def span(self) -> float:
        """From the first incident opening to the last step falling due."""
        return (self.incidents - 1) * self.spacing + LADDER[-1]


@dataclass
class Outcome:
    """One path's run of one case."""

    delays: dict[int, list[float]] = field(default_factory=lambda: {s: [] for s in range(len(LADDER))})
    messages: Counter[str] = field(default_factory=Counter)  # per person
    incidents_told: Counter[str] = field(default_factory=Counter)  # per person: (incident, step) pairs
    engine_delays: list[float] = field(default_factory=list)  # the engine's own due → sent, s
    seconds: float = 0.0

    @property
    def all_delays(self) -> list[float]:
        return [d for values in self.delays.values() for d in values]


def site_yaml(db: Path, hook_url: str, tick: float, group_interval: float) -> str:
    steps = "\n".join(
        f"        - {{after: {after:g}, notify: [{role}], channels: [hook]}}"
        for after, role in zip(LADDER, ROLES, strict=True)
    )
    roles = "\n".join(f"        {role}: {{24h: [{p}]}}" for role, p in zip(ROLES, PEOPLE, strict=True))
    people = "\n".join(f"        - {{id: {p}, name: {p}}}" for p in PEOPLE)
    return f"""\
store: {{path: "{db}"}}
api: {{enabled: false}}
incidents: {{correlation_window: 0, flood_count: 1000000}}
escalation:
  tick: {tick}
  group_interval: {group_interval}
  channels:
    - {{type: webhook, name: hook, url: "{hook_url}", secret: "bench-secret-0123456789abcdef"}}
  policies:
    - id: bench
      priorities: [high]
      rules: ["bench_*"]
      steps:
{steps}
estates:
  - id: {ESTATE}
    name: {{zh: 基准小区, en: Bench Estate}}
    duty:
      people:
{people}
      shifts: {{24h: "08:00-08:00+1"}}
      roles:
{roles}
"""


async def _sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _collect(
    receiver: Receiver, pairs: int, not_before: float, within: float, settle: float = SETTLE
) -> list[Record]:
    """Wait until `not_before`, then dump until `pairs` (incident, step) notifications have arrived, then
    `settle` s more for duplicates. Polling starts late so the pipe costs the measured process nothing
    while most steps fall due."""
    await _sleep_until(not_before)
    deadline = time.monotonic() + within
    records: list[Record] = []
    while sum(len(r.incident_ids) for r in records) < pairs:
        if time.monotonic() > deadline:
            got = sum(len(r.incident_ids) for r in records)
            raise BenchError(f"only {got} of {pairs} (incident, step) notifications arrived in time")
        await asyncio.sleep(0.2)
        records += await receiver.dump()
    if not settle:
        return records
    await asyncio.sleep(settle)
    return records + await receiver.dump()


async def run_gateway(case: Case, receiver: Receiver, tick: float, folder: Path) -> Outcome:
    db = folder / f"{case.label}-gi{case.group_interval:g}.db"
    config = parse_config(
        site_yaml(db, receiver.url("/hook"), tick, case.group_interval), "bench-site.yaml", {}
    )
    app, stop = App(config, base_dir=folder), asyncio.Event()
    task = asyncio.create_task(app.run(stop), name="gateway")
    opened: dict[int, float] = {}
    try:
        await asyncio.wait_for(app.ready.wait(), CHILD_TIMEOUT)
        if app.escalation is None:
            raise BenchError("escalation is not enabled in the bench config")
        await receiver.dump()  # nothing should be there; start clean
        started = time.time() + 0.1
        for i in range(case.incidents):
            await _sleep_until(started + i * case.spacing)
            transition = Transition(
                f"{ESTATE}/d{i}/bench_alarm", ESTATE, f"d{i}", "bench_alarm", Priority.HIGH, True,
                time.time(), 1, f"基准告警 {i}", f"bench alarm {i}",
            )  # fmt: skip
            changes = await app.service.apply([transition])
            if len(changes) != 1 or not changes[0].new:
                raise BenchError(
                    f"transition {i} did not open exactly one new incident ({len(changes)} changes)"
                )
            opened[changes[0].incident.id] = changes[0].incident.opened_at
        last_due = max(opened.values()) + LADDER[-1]
        records = await _collect(
            receiver,
            len(opened) * len(LADDER),
            last_due + tick,
            within=case.group_interval + LADDER[-1] + 10 * tick + 10,
        )
        stats = app.escalation.escalator.stats
        if stats.failed_notifications or stats.nobody_on_duty:
            raise BenchError(
                f"engine counted {stats.failed_notifications} failed notification(s) and "
                f"{stats.nobody_on_duty} step(s) with nobody on duty"
            )
        outcome = Outcome(engine_delays=list(stats.engine_delays), seconds=time.time() - started)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    seen: set[tuple[int, int]] = set()
    for record in records:
        if record.target != "/hook" or not 0 <= record.step < len(LADDER):
            raise BenchError(f"unexpected request at the receiver: {record.target} step {record.step}")
        if record.person != PEOPLE[record.step]:
            raise BenchError(f"step {record.step} went to {record.person}, not {PEOPLE[record.step]}")
        outcome.messages[record.person] += 1
        for incident_id in record.incident_ids:
            key = (incident_id, record.step)
            if key in seen:
                raise BenchError(f"incident {incident_id} step {record.step} notified more than once")
            if incident_id not in opened:
                raise BenchError(f"notification for unknown incident {incident_id}")
            seen.add(key)
            outcome.incidents_told[record.person] += 1
            due = opened[incident_id] + LADDER[record.step]
            outcome.delays[record.step].append(record.arrival - due)
    return outcome


def _body(i: int, step: int) -> bytes:
    """The JSON a webhook notification for incident i, step `step` carries (the gateway's own encoder)."""
    note = Notification(
        ESTATE, "基准小区", "Bench Estate", (i + 1,), Priority.HIGH, f"基准告警 {i}", f"bench alarm {i}",
        f"d{i}", "", time.time(), step,
    )  # fmt: skip
    return notification_json(note, Person(PEOPLE[step], PEOPLE[step]))


async def run_baseline(case: Case, receiver: Receiver) -> Outcome:
    """Sleep until each due time, POST the body; the same due times as the gateway's case."""
    jobs = sorted(
        (i * case.spacing + after, i, step)
        for i in range(case.incidents)
        for step, after in enumerate(LADDER)
    )
    bodies = {(i, step): _body(i, step) for _, i, step in jobs}  # built before the clock starts
    headers = {"Content-Type": "application/json"}
    due_of: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=15) as client:
        await receiver.dump()
        started = time.time() + 0.1
        for offset, i, step in jobs:
            due = started + offset
            await _sleep_until(due)
            target = f"/base/{i}/{step}"
            due_of[target] = due
            reply = await client.post(receiver.url(target), content=bodies[(i, step)], headers=headers)
            if reply.status_code != 200:
                raise BenchError(f"baseline POST got HTTP {reply.status_code}")
        records = await _collect(receiver, len(jobs), started + jobs[-1][0], within=10, settle=0)
    outcome = Outcome(seconds=time.time() - started)
    if len(records) != len(jobs) or {r.target for r in records} != set(due_of):
        raise BenchError(f"baseline: {len(records)} requests arrived for {len(jobs)} POSTs")
    for record in records:
        outcome.delays[record.step].append(record.arrival - due_of[record.target])
        outcome.messages[record.person] += 1
        outcome.incidents_told[record.person] += 1
    return outcome


# -- report ---------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"  {label:40}{len(ms):>6}{_pct(ms, 0.5):>10.1f}{_pct(ms, 0.99):>10.1f}{max(ms):>10.1f}"
        f"{min(ms):>10.1f}"
    )


def _header(title: str) -> None:
    print(f"\n{title}")
    print(f"  {'':40}{'n':>6}{'p50':>10}{'p99':>10}{'max':>10}{'min':>10}   ms, due → arrived")


def report_spaced(case: Case, base: Outcome, gateway: Outcome) -> None:
    _header(
        f"(a) spaced: {case.incidents} incidents, one every {case.spacing:g} s; "
        f"steps at {' / '.join(f'{a:g}' for a in LADDER)} s, one person each; group_interval 0"
    )
    print(_row("baseline (sleep + POST), all steps", base.all_delays))
    for step, values in gateway.delays.items():
        print(_row(f"gateway step {step} ({PEOPLE[step]})", values))
    print(_row("gateway all steps", gateway.all_delays))
    print(_row("  engine's own due → sent", gateway.engine_delays))


def report_burst(case: Case, base: Outcome, runs: list[tuple[str, Outcome]]) -> None:
    _header(
        f"(b) burst: {case.incidents} incidents in {case.incidents * case.spacing:g} s "
        f"(one every {case.spacing * 1000:g} ms); steps at {' / '.join(f'{a:g}' for a in LADDER)} s"
    )
    print(_row("baseline (sleep + POST), all steps", base.all_delays))
    for label, outcome in runs:
        print(_row(f"gateway {label}", outcome.all_delays))
        print(_row("  engine's own due → sent (or held)", outcome.engine_delays))
    print("\n  messages sent per person (incidents told)")
    print(f"  {'':40}" + "".join(f"{p + ' (step ' + str(s) + ')':>18}" for s, p in enumerate(PEOPLE)))
    for label, outcome in [("baseline", base), *((f"gateway {lb}", o) for lb, o in runs)]:
        cells = "".join(f"{f'{outcome.messages[p]} ({outcome.incidents_told[p]})':>18}" for p in PEOPLE)
        print(f"  {label:40}{cells}")


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small run, about 30 s (the default group_interval alone needs 13 s)",
    )
    parser.add_argument(
        "--tick", type=float, default=DEFAULT_TICK, help="escalation tick, s (default: config's)"
    )
    parser.add_argument("--incidents", type=int, help="(a) incidents (default 50; --quick 10)")
    parser.add_argument("--spacing", type=float, default=0.3, help="(a) s between incidents (default 0.3)")
    parser.add_argument("--burst", type=int, help="(b) incidents in the burst (default 200; --quick 50)")
    parser.add_argument(
        "--burst-seconds", type=float, help="(b) length of the burst, s (default 2; --quick 0.5)"
    )
    args = parser.parse_args(argv)
    args.incidents = args.incidents or (10 if args.quick else 50)
    args.burst = args.burst or (50 if args.quick else 200)
    args.burst_seconds = args.burst_seconds or (0.5 if args.quick else 2.0)
    if args.incidents < 1 or args.burst < 1 or args.spacing <= 0 or args.burst_seconds <= 0 or args.tick <= 0:
        parser.error("counts and times must be positive")
    return args


async def run(args: argparse.Namespace) -> None:
    spaced = Case("spaced", args.incidents, args.spacing)
    burst = Case("burst", args.burst, args.burst_seconds / args.burst)
    for interval in (0.0, DEFAULT_GROUP_INTERVAL):  # a bad --tick fails here, before anything runs
        parse_config(site_yaml(Path("check.db"), "http://127.0.0.1:9/hook", args.tick, interval), "bench", {})
    began = time.monotonic()
    receiver = Receiver()
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cancels the run like Ctrl-C does: `finally` stops the receiver
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await receiver.start()
        async with httpx.AsyncClient(timeout=15) as client:  # this process's first httpx request costs
            await client.post(receiver.url("/warm-up"), content=b"{}")  # ~15 ms once (lazy set-up)
        await receiver.dump()
        print(
            f"receiver: child process, http://{HOST}:{receiver.port} "
            "(HTTP/1.1 keep-alive, 200 at once, stamped when the body has arrived)"
        )
        with tempfile.TemporaryDirectory(prefix="bench-escalation-") as tmp:
            folder = Path(tmp)
            base_a = await run_baseline(spaced, receiver)
            print(f"  (a) baseline done ({base_a.seconds:.1f} s)", flush=True)
            gw_a = await run_gateway(spaced, receiver, args.tick, folder)
            print(f"  (a) gateway done ({gw_a.seconds:.1f} s)", flush=True)
            base_b = await run_baseline(burst, receiver)
            print(f"  (b) baseline done ({base_b.seconds:.1f} s)", flush=True)
            runs = []
            for interval in (0.0, DEFAULT_GROUP_INTERVAL):
                case = Case("burst", burst.incidents, burst.spacing, interval)
                outcome = await run_gateway(case, receiver, args.tick, folder)
                label = f"group_interval {interval:g} s" + (" (default)" if interval else "")
                print(f"  (b) gateway {label} done ({outcome.seconds:.1f} s)", flush=True)
                runs.append((label, outcome))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        await receiver.dump()  # its peak RSS, after everything
    finally:
        await receiver.stop()
    print("\nmachine")
    print(f"  CPU       {cpu_model()}")
    print(f"  cores     {os.cpu_count()}")
    print(f"  Python    {sys.version.split()[0]}")
    print(f"  httpx     {version_of('httpx')}")
    print(f"  SQLite    {sqlite3.sqlite_version}")
    print(
        f"\nconfig: escalation tick {args.tick:g} s; one webhook channel (signed POST, attempts {ATTEMPTS}); "
        f"policy steps at {' / '.join(f'{a:g}' for a in LADDER)} s → {' / '.join(PEOPLE)}\n"
        "  incidents opened by feeding transitions to app.service.apply (SQLite, WAL, temp dir); "
        "correlation and flood incident off"
    )
    report_spaced(spaced, base_a, gw_a)
    report_burst(burst, base_b, runs)
    print("\ninfo")
    print(
        "  engine's own due → sent: Escalator.stats.engine_delays, taken when the channel returned, "
        "from the due time or the end of a deliberate hold"
    )
    print(
        f"  peak RSS: this process {peak:,.1f} MiB (gateway and baseline), receiver process "
        f"{receiver.peak_rss_mib:,.1f} MiB; wall time {time.monotonic() - began:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except (BenchError, ConfigError, OSError, httpx.HTTPError) as exc:
        reason = (
            str(exc).splitlines()[0]
            if isinstance(exc, (BenchError, ConfigError))
            else f"{type(exc).__name__}: {exc}"
        )
        print(f"escalation_delay: FAILED: {reason}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("escalation_delay: interrupted (receiver stopped)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
