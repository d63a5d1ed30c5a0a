#!/usr/bin/env python3
"""Hostile-input fuzz: a million generated MQTT payloads through a private Mosquitto into a real gateway.

What runs
    * one private Mosquitto (free port on 127.0.0.1, stopped by PID);
    * the real ``gateway.runtime.app.App`` in this process (MQTT ingress with manual acks → decoders →
      ingest queue → alert engine → incidents → SQLite), one device of every MQTT profile: generic
      access gate, generic ANPR JSON, Hikvision ISAPI, uhppoted-mqtt (shared topic, picked by
      device-id) and Frigate LPR (shared topic, picked by camera); dead-letter topic on;
    * a publisher process (paho, QoS 1) sending N payloads from a fixed seed: each profile's real
      payloads (bench/fuzz_corpus.py), mutations of them (wrong types, dropped keys, NaN tokens, deep
      nests, cut or flipped bytes, invalid UTF-8), junk, the odd oversized payload, and topics no
      device owns. It stays at most WINDOW payloads ahead of what the gateway has accounted for, so
      the broker never has to drop anything.

Every payload is accounted exactly once: an envelope for the core, or a counted rejection (device
error by reason), an ignored message, an unrouted or unattributed one. At the end the script checks
0 crashes (the App task alive, no core_errors, no 'decoder_crash'), that every payload was accounted,
and that valid ones were processed; it prints the rejection table, dead letters, duration and rate.
Exit 1 with a reason when a check fails.

Run:  .venv/bin/python bench/fuzz_mqtt.py [--quick] [--payloads N] [--seed S] [--max-seconds T]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, the project is not
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.fuzz_corpus import junk, mutate, seeds  # noqa: E402
from gateway.config import parse_config  # noqa: E402
from gateway.runtime.app import App  # noqa: E402
from gateway.runtime.broker import MosquittoProcess  # noqa: E402

WINDOW = 20_000  # payloads the publisher may be ahead of the gateway (the broker queues up to 100,000)
QUICK = 20_000
FULL = 1_000_000
DEAD_LETTER = "estate-gateway/fuzz-gw/dead-letter"
# device id → (profile, topic filter, base topic, match)
DEVICES: dict[str, tuple[str, str, str, dict[str, Any] | None]] = {
    "gate": ("generic_access_gate", "fz/gate/+", "fz/gate", None),
    "anpr": ("generic_anpr_json", "fz/anpr/+", "fz/anpr", None),
    "hik": ("hikvision_access_mqtt", "fz/hik/+", "fz/hik", None),
    "uhp": ("uhppoted_mqtt", "uhppoted/gateway/events/#", "uhppoted/gateway/events",
            {"message.event.device-id": 405419896}),
    "frigate": ("frigate_lpr", "frigate/+", "frigate", {"camera": "gate_cam"}),
}  # fmt: skip


def site_yaml(port: int, db: Path) -> str:
    devices = []
    for device, (profile, topic, _, match) in DEVICES.items():
        family = "plate_barrier" if profile in ("generic_anpr_json", "frigate_lpr") else "access_gate"
        mqtt = f'topic: "{topic}"' + (f", match: {match!r}" if match else "")
        devices.append(f"      - {{id: {device}, family: {family}, profile: {profile}, mqtt: {{{mqtt}}}}}")
    return f"""\
gateway_id: fuzz-gw
mqtt: {{host: 127.0.0.1, port: {port}, client_id: fuzz-gw,
        dead_letter_topic: "estate-gateway/{{gateway}}/dead-letter", dead_letter_rate: 10}}
store: {{path: "{db}"}}
api: {{enabled: false}}
escalation: {{enabled: false}}  # no one to tell: the incidents are the point
estates:
  - id: fz
    name: {{zh: 模糊测试, en: Fuzz}}
    gate_hours: "00:00-24:00"
    vehicles:
      residents: [{{plate: 粤B12345, label: resident}}]
    devices:
{chr(10).join(devices)}
"""


def _topic(base: str, channel: str) -> str:
    if base == "uhppoted/gateway/events" and channel == "events":
        return base  # the feed is the base topic itself; its last level names the channel
    return f"{base}/{channel}"


def payloads(n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """N (topic, payload) pairs, deterministic for a seed."""
    rng = random.Random(seed)
    real = {device: seeds(profile) for device, (profile, *_) in DEVICES.items()}
    names = list(DEVICES)
    for i in range(n):
        device = names[i % len(names)]
        _, _, base, _ = DEVICES[device]
        seed_payload = rng.choice(real[device])
        roll = rng.random()
        topic = _topic(base, seed_payload.channel)
        if roll < 0.15:  # valid, with a fresh record id where the profile dedups
            doc = dict(seed_payload.payload)
            if device == "hik":
                doc["AccessControllerEvent"] = {**doc.get("AccessControllerEvent", {}), "serialNo": i}
            elif device == "uhp":
                doc = {"message": {"event": {**doc["message"]["event"], "event-id": i}}}
            yield topic, orjson.dumps(doc)
        elif roll < 0.85:
            yield topic, mutate(rng, seed_payload.payload)
        elif roll < 0.95:
            yield topic, junk(rng)
        elif roll < 0.9505:
            yield topic, b'{"x": "' + b"y" * 70_000 + b'"}'  # above every profile's max_payload
        elif roll < 0.975:  # a channel the profile does not have
            yield (
                f"{base}/{rng.choice(['x', 'command', 'state', 'Event', ''])}",
                mutate(rng, seed_payload.payload),
            )
        else:  # another camera / controller on a shared topic: no device of ours claims it (unrouted)
            # (a topic outside every filter never reaches the gateway: the broker does not deliver it)
            other = {**seeds("frigate_lpr")[0].payload, "camera": f"cam{rng.randrange(9)}"}
            yield "frigate/tracked_object_update", orjson.dumps(other)


def publisher(port: int, n: int, seed: int, accounted: Any, conn: Connection) -> None:
    """Child process: publish N payloads at QoS 1, never more than WINDOW ahead of the gateway."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fuzz-pub-{seed}")
    client.max_inflight_messages_set(500)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        sent, last = 0, None
        for topic, payload in payloads(n, seed):
            while sent - accounted.value > WINDOW:
                time.sleep(0.005)
            last = client.publish(topic, payload, qos=1)
            sent += 1
            if sent % 500 == 0:
                last.wait_for_publish(60)
        if last is not None:
            last.wait_for_publish(60)
        conn.send(("done", sent))
    except Exception as exc:
        conn.send(("error", repr(exc)))
    finally:
        client.loop_stop()
        client.disconnect()


@dataclass
class FuzzResult:
    payloads: int
    accounted: int
    seconds: float
    crashed: str | None
    core_errors: int
    items_processed: int
    envelopes: int
    unrouted: int
    unattributed: dict[str, int]
    rejected: dict[str, Counter[str]] = field(default_factory=dict)  # device → reason → count
    ignored: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.payloads / self.seconds if self.seconds else 0.0

    def failures(self) -> list[str]:
        out = []
        if self.crashed:
            out.append(f"gateway crashed: {self.crashed}")
        if self.core_errors:
            out.append(f"{self.core_errors} core errors")
        crashes = sum(c["decoder_crash"] for c in self.rejected.values())
        if crashes:
            out.append(f"{crashes} decoder crashes")
        if self.accounted != self.payloads:
            out.append(f"{self.payloads - self.accounted} payloads not accounted for")
        if not self.items_processed:
            out.append("no valid payload was processed")
        return out


def _accounted(app: App) -> int:
    assert app.mqtt is not None
    counted = sum(s.ignored + s.errors.total() for _, s in app.stats.items())
    return app.mqtt.accepted + counted + app.mqtt.unrouted + app.mqtt.unattributed.total()


async def run_fuzz(n: int, seed: int = 1, max_seconds: float = 1800.0, progress: bool = False) -> FuzzResult:
    """Start broker, gateway and publisher; return the accounting when all N are in (or time is up)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp, MosquittoProcess() as broker:
        config = parse_config(site_yaml(broker.port, Path(tmp) / "fuzz.db"), "fuzz.yaml", {})
        app = App(config, base_dir=Path(tmp))
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        await asyncio.wait_for(app.ready.wait(), 20)
        deadline = time.monotonic() + 20
        while not (app.mqtt and app.mqtt.connected) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the ingress has no "connected" event to wait on
        await asyncio.sleep(0.5)  # subscriptions settle
        ctx = multiprocessing.get_context("spawn")
        accounted = ctx.Value("q", 0, lock=False)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=publisher, args=(broker.port, n, seed, accounted, child), daemon=True)
        start = time.monotonic()
        proc.start()
        sent: int | None = None
        try:
            shown = start
            while time.monotonic() - start < max_seconds and not task.done():
                accounted.value = _accounted(app)
                if progress and time.monotonic() - shown >= 5:
                    shown = time.monotonic()
                    print(f"  {shown - start:6.0f} s  {accounted.value:>10,} accounted", file=sys.stderr)
                if sent is None and parent.poll():
                    kind, value = parent.recv()
                    if kind == "error":
                        raise RuntimeError(f"publisher: {value}")
                    sent = value
                if sent is not None and accounted.value >= sent and app.queue.depth == 0:
                    break
                await asyncio.sleep(0.05)
            seconds = time.monotonic() - start
            await asyncio.sleep(0.5)  # the pipeline's last batch commits
            crashed = None
            if task.done():
                exc = task.exception()
                crashed = repr(exc) if exc else "App.run returned by itself"
            health = app.health()
            assert app.mqtt is not None
            result = FuzzResult(
                payloads=n,
                accounted=_accounted(app),
                seconds=seconds,
                crashed=crashed,
                core_errors=int(health["core_errors"]),
                items_processed=int(health["items_processed"]),
                envelopes=app.mqtt.accepted if app.mqtt else 0,  # one Envelope carries a batch
                unrouted=app.mqtt.unrouted,
                unattributed=dict(app.mqtt.unattributed),
                rejected={device: Counter(s.errors) for (_, device), s in app.stats.items()},
                ignored={device: s.ignored for (_, device), s in app.stats.items()},
                dead_letters=app.mqtt.dead_letters.stats() if app.mqtt.dead_letters else {},
            )
        finally:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
            stop.set()
            if not task.done():
                await asyncio.wait_for(task, 15)
        return result


def report(r: FuzzResult) -> str:
    reasons = sorted({reason for c in r.rejected.values() for reason in c})
    devices = list(r.rejected)
    width = max([len(x) for x in reasons] + [8])
    lines = [f"{'reason':<{width}} " + " ".join(f"{d:>9}" for d in devices) + f" {'total':>9}"]
    for reason in reasons:
        row = [r.rejected[d][reason] for d in devices]
        lines.append(f"{reason:<{width}} " + " ".join(f"{v:>9}" for v in row) + f" {sum(row):>9}")
    ignored = [r.ignored[d] for d in devices]
    lines.append(f"{'ignored':<{width}} " + " ".join(f"{v:>9}" for v in ignored) + f" {sum(ignored):>9}")
    lines += [
        "",
        f"payloads published      {r.payloads:>10,}",
        f"accounted for           {r.accounted:>10,}",
        f"  accepted (envelopes)  {r.envelopes:>10,}   items processed by the core {r.items_processed:,}",
        f"  rejected by a device  {sum(c.total() for c in r.rejected.values()):>10,}",
        f"  ignored               {sum(r.ignored.values()):>10,}",
        f"  unrouted              {r.unrouted:>10,}",
        f"  unattributed (shared) {sum(r.unattributed.values()):>10,}   {r.unattributed}",
        f"dead letters            {r.dead_letters}",
        f"core errors             {r.core_errors}",
        f"gateway                 {'alive' if not r.crashed else r.crashed}",
        f"duration                {r.seconds:.1f} s   ({r.rate:,.0f} payloads/s)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} payloads")
    parser.add_argument("--payloads", type=int, default=None, help=f"default {FULL:,}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="give up (exit 1) after this")
    args = parser.parse_args()
    n = args.payloads or (QUICK if args.quick else FULL)
    result = asyncio.run(run_fuzz(n, args.seed, args.max_seconds, progress=True))
    print(report(result))
    failures = result.failures()
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("OK: no crash, every payload accounted for")
    return 0


if __name__ == "__main__":
    sys.exit(main())
