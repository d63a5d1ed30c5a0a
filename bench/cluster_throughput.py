#!/usr/bin/env python3
"""Scale-out: readings/s of 2 gateway instances vs 1 on one PostgreSQL database (issue 10).

Both runs do the same work on the same machine: `--estates` estates × `--gates` MQTT access gates, a
backlog of `--messages` QoS 1 state messages (1 % of the gates raise an alarm once) queued in the
estates' own MQTT sessions while no gateway runs (the instances split the leases, then are killed -9,
so the split stays); then the instances start again (`estate-gateway run` subprocesses, cluster mode),
each takes back its own estates at once and drains their sessions. Measured: from the first processed
message to the last (summed `mqtt_messages_accepted` of /health), so start-up is left out; the baseline
is the one-instance run in the same invocation. Every instance commits to the same private PostgreSQL
server (started here, as the test fixtures do) and reads from one private Mosquitto (free port).

    bench/cluster_throughput.py                    # 20 estates × 50 gates, 200,000 messages, 3 repeats
    bench/cluster_throughput.py --quick            # 10 × 20, 60,000 messages, 1 repeat

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from child import BenchError  # noqa: E402
from machine import cpu_model, version_of  # noqa: E402
from paced import PacedPublisher  # noqa: E402

from gateway.runtime.broker import MosquittoProcess, free_port  # noqa: E402
from tests.integration.cluster_gateway import Instance, cluster_site_yaml, split_evenly  # noqa: E402
from tests.integration.faults import fault_site_yaml  # noqa: E402
from tests.integration.postgres import PostgresProcess  # noqa: E402
from tests.integration.receivers import HttpReceiver  # noqa: E402

LEASE = 90.0  # longer than the backlog takes to publish: the split survives the kill -9 in between


async def _until(what: str, within: float, check: Any) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise BenchError(f"timed out after {within:.0f}s waiting for {what}")


def _backlog(estates: int, gates: int, messages: int, seed: int) -> list[tuple[str, str]]:
    """The queued work: every gate's state messages in turn; 1 % of the gates raise an alarm once."""
    rng = random.Random(seed)
    keys = [(f"e{e:02d}", f"g{g:03d}") for e in range(estates) for g in range(gates)]
    alarm = set(rng.sample(range(len(keys)), max(1, len(keys) // 100)))
    work = []
    for n in range(messages):
        index = n % len(keys)
        estate, gate = keys[index]
        body: dict[str, Any] = {"door_open": n % 2 == 0}
        if index in alarm and n < len(keys):
            body["tamper"] = True
        work.append((f"estate/{estate}/access_gate/{gate}/state", json.dumps(body)))
    return work


async def _publish_backlog(port: int, estates: int, gates: int, messages: int, seed: int) -> None:
    """One paho client in its own process (bench/paced.py; QoS 1, every PUBACK awaited), paced at
    10,000 msgs/s: unpaced, more than 65,535 unacknowledged messages would reuse packet ids."""
    work = _backlog(estates, gates, messages, seed)
    publisher = PacedPublisher(port, f"bench-cluster-pub-{seed}", work, 10_000)
    publisher.start()
    result = await asyncio.to_thread(publisher.result)
    if result.sent != messages:
        raise BenchError(f"published {result.sent} of {messages}")


async def run_once(count: int, args: argparse.Namespace, pg: PostgresProcess, tmp: Path, seed: int) -> float:
    """Messages/s drained by `count` instances (fresh database and broker)."""
    dsn = pg.dsn(pg.create_database(f"bench_{count}_{seed}"))
    with MosquittoProcess(port=free_port()) as broker:
        hook = await HttpReceiver().start()  # escalation webhook: answered, not measured
        try:
            single = fault_site_yaml(broker.port, 0, tmp / "unused.db", hook, args.estates, args.gates)
            site = tmp / f"site-{count}-{seed}.yaml"
            text = cluster_site_yaml(single, dsn, LEASE, LEASE / 3)
            site.write_text(text.replace("queue_size: 2000", "queue_size: 5000"))
            nodes = [
                Instance(f"gw-{n}", site, free_port(), tmp / f"gw-{n}-{count}-{seed}.log")
                for n in range(count)
            ]
            # 1. sessions: every estate's MQTT session exists (all instances up, leases split), then kill -9:
            #    the leases stay with the instance ids, and each takes its own back at once when restarted
            for node in nodes:
                node.start()
            await _until("the leases to split", 90, lambda: split_evenly(nodes, args.estates))
            await asyncio.sleep(1.0)  # every estate's session subscribed
            for node in nodes:
                node.kill9()
            # 2. backlog queued in the sessions while no gateway runs
            await _publish_backlog(broker.port, args.estates, args.gates, args.messages, seed)
            # 3. drain: first processed → last processed
            for node in nodes:
                node.start()
            first = None
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                healths = [await n.get("/health") for n in nodes]
                done = sum(int(h["mqtt_messages_accepted"]) for h in healths if h)
                now = time.perf_counter()
                if first is None and done > 0:
                    first = (now, done)
                if os.environ.get("BENCH_TRACE"):
                    print(f"    t={now:.2f} processed={done}", flush=True)
                if done >= args.messages and first is not None:
                    return (done - first[1]) / max(1e-6, now - first[0])
                await asyncio.sleep(0.05)
            raise BenchError(f"{count} instance(s) did not drain {args.messages} messages in {args.timeout}s")
        finally:
            for node in locals().get("nodes", []):
                node.stop()
            await hook.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--estates", type=int, default=None)
    parser.add_argument("--gates", type=int, default=None)
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    args.estates = args.estates or (10 if args.quick else 20)
    args.gates = args.gates or (20 if args.quick else 50)
    args.messages = args.messages or (60_000 if args.quick else 200_000)
    repeats = args.repeats or (1 if args.quick else 3)
    one: list[float] = []
    two: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder, PostgresProcess() as pg:
        tmp = Path(folder)
        print(f"PostgreSQL pid {pg.pid} on port {pg.port}; {args.estates} estates × {args.gates} gates, "
              f"{args.messages:,} queued messages per run, {repeats} repeat(s)")  # fmt: skip
        for repeat in range(repeats):
            try:
                one.append(await run_once(1, args, pg, tmp, 100 + repeat))
                two.append(await run_once(2, args, pg, tmp, 200 + repeat))
            except BenchError as exc:
                print(f"FAILED: {exc}")
                return 1
            print(
                f"  repeat {repeat + 1}: 1 instance {one[-1]:>9,.0f} msgs/s   "
                f"2 instances {two[-1]:>9,.0f} msgs/s"
            )
    m1, m2 = statistics.median(one), statistics.median(two)
    print()
    print(f"{'':40}{'median':>12}{'min':>12}{'max':>12}")
    print(f"{'1 instance (baseline), msgs/s':40}{m1:>12,.0f}{min(one):>12,.0f}{max(one):>12,.0f}")
    print(f"{'2 instances, msgs/s':40}{m2:>12,.0f}{min(two):>12,.0f}{max(two):>12,.0f}")
    print(f"{'2 / 1':40}{m2 / m1:>12.2f}")
    print()
    print("machine")
    facts = [("CPU", cpu_model()), ("cores", str(os.cpu_count())), ("Python", sys.version.split()[0])]
    facts += [("asyncpg", version_of("asyncpg")), ("paho-mqtt", version_of("paho-mqtt"))]
    for name, value in facts:
        print(f"  {name:<10} {value}")
    print(json.dumps({"one": one, "two": two, "ratio": m2 / m1}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
