"""Fault-injection parts shared by test_faults_kill.py and test_faults_broker.py.

- `fault_site_yaml`: many estates of MQTT access gates, a site rule that turns a gate's `tamper` point
  into one alarm key per gate, correlation and flood grouping off (so one condition is one incident), and
  an escalation policy with two steps to a webhook.
- `Stream`: a seeded stream of state messages, each gate's one alarm message at a random place in it;
  every message carries a unique `ts` so the commit log can name it.
- `Publisher`: a retrying QoS 1 publisher (aiomqtt): a message leaves the buffer only when the broker
  has acknowledged it; across a broker restart or outage it reconnects and publishes the rest again.
- `GatewayProcess` (faults_gateway.py): the gateway with its commit log as a subprocess.
- `Outcome`: what the commit log, the API and the webhook receiver say at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from tests.integration.receivers import HttpReceiver

TOKEN = "faults-operator-token-0123456789"
RULE = "gate_tamper_state"
STEPS = (0.0, 3.0)  # escalation: step 0 at once, step 1 three seconds after the incident opened


def estate_id(n: int) -> str:
    return f"e{n:02d}"


def device_id(n: int) -> str:
    return f"g{n:03d}"


def fault_site_yaml(
    mqtt_port: int, api_port: int, db: Path, hook: HttpReceiver, estates: int, per_estate: int
) -> str:
    lines = [
        "gateway_id: faults-gw",
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}, client_id: faults-gateway, keepalive: 5}}",
        f'store: {{path: "{db}"}}',
        "ingest: {queue_size: 2000}",
        "incidents: {correlation_window: 0, flood_count: 100000}",
        f"api: {{host: 127.0.0.1, port: {api_port}, tokens: "
        f'[{{name: checker, token: "{TOKEN}", role: operator, estates: ["*"]}}]}}',
        "rules:",
        f"  - {{id: {RULE}, kind: state, family: access_gate, point: tamper, values: [true],",
        "     priority: high, message: {zh: '{device} 防拆状态报警', en: 'Tamper state at {device}'}}",
        "escalation:",
        "  tick: 0.1",
        "  backoff: 0.2",
        "  group_interval: 0",
        f'  channels: [{{type: webhook, name: hook, url: "{hook.url("/notify")}", '
        'secret: "faults-hook-secret-0123456789"}]',
        "  policies:",
        "    - id: tamper_state",
        f"      rules: [{RULE}]",
        "      steps:",
        f"        - {{after: {STEPS[0]}, notify: [control_room], channels: [hook]}}",
        f"        - {{after: {STEPS[1]}, notify: [duty_manager], channels: [hook]}}",
        "estates:",
    ]
    for e in range(estates):
        estate = estate_id(e)
        lines += [
            f"  - id: {estate}",
            f"    name: {{zh: 小区{e}, en: Estate {e}}}",
            "    duty:",
            f"      people: [{{id: cr-{estate}, name: 值班{e}}}, {{id: dm-{estate}, name: 经理{e}}}]",
            '      shifts: {24h: "08:00-08:00+1"}',
            f"      roles: {{control_room: {{24h: [cr-{estate}]}}, duty_manager: {{24h: [dm-{estate}]}}}}",
            "    devices:",
        ]
        for d in range(per_estate):
            device = device_id(d)
            lines += [
                f"      - {{id: {device}, family: access_gate, profile: generic_access_gate,",
                f'         mqtt: {{topic: "estate/{estate}/access_gate/{device}/+"}}}}',
            ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Message:
    seq: int
    key: str  # estate/device
    alarm: bool  # carries tamper: true (the gate's one alarm condition)

    @property
    def topic(self) -> str:
        estate, device = self.key.split("/")
        return f"estate/{estate}/access_gate/{device}/state"


class Stream:
    """`total` messages over `estates` × `per_estate` gates, shuffled with `seed`; each gate sends one
    alarm message (tamper: true) at a random place among its own and only `door_open` otherwise, so a
    lost alarm message is a missing incident and a redelivered one can only repeat an active alarm."""

    def __init__(self, seed: int, total: int, estates: int, per_estate: int) -> None:
        rng = random.Random(seed)
        keys = [f"{estate_id(e)}/{device_id(d)}" for e in range(estates) for d in range(per_estate)]
        assert total % len(keys) == 0, "every gate sends the same number of messages"
        order = [k for k in keys for _ in range(total // len(keys))]
        rng.shuffle(order)
        alarm_at = {k: rng.randrange(total // len(keys)) for k in keys}
        seen: Counter[str] = Counter()
        self.messages: list[Message] = []
        for seq, key in enumerate(order):
            self.messages.append(Message(seq, key, seen[key] == alarm_at[key]))
            seen[key] += 1
        self.keys = keys
        self.alarm_keys = {f"{k}/{RULE}" for k in keys}
        self.stamps: dict[tuple[str, int], int] = {}  # (estate/device, ts_ns) → seq, filled as sent
        self._last = 0.0

    def payload(self, message: Message) -> bytes:
        """The message's JSON, with a `ts` unique per gate: the commit log names messages by it."""
        ts = max(time.time(), self._last + 1e-4)
        self._last = ts
        self.stamps[(message.key, int(ts * 1e9))] = message.seq
        body: dict[str, Any] = {"door_open": False, "ts": ts}
        if message.alarm:
            body["tamper"] = True
        return json.dumps(body).encode()


@dataclass
class Publisher:
    """Retrying QoS 1 publisher: `put` buffers; `run` sends in order, each message until PUBACK."""

    port: int
    client_id: str = "faults-publisher"
    window: int = 10  # aiomqtt warns above 10 pending calls
    buffer: deque[tuple[str, bytes]] = field(default_factory=deque)
    acked: int = 0
    republished: int = 0  # sent again after a connection failed before its PUBACK
    reconnects: int = 0
    down_since: float | None = None
    outages: list[float] = field(default_factory=list)  # seconds from failure to reconnected
    connected: bool = False
    closing: bool = False

    def put(self, topic: str, payload: bytes) -> None:
        self.buffer.append((topic, payload))

    async def run(self) -> None:
        """Until `closing` is set and the buffer is empty; each connection attempt bounded by 3 s."""
        while not (self.closing and not self.buffer):
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=self.client_id, timeout=3
                ) as client:
                    self.connected = True
                    if self.down_since is not None:
                        self.outages.append(time.monotonic() - self.down_since)
                        self.down_since = None
                    await self._drain(client)
            except aiomqtt.MqttError:
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    self.reconnects += 1
                self.connected = False
                await asyncio.sleep(0.2)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Up to `window` publishes in flight at once; the ones without PUBACK go back to the front."""
        while not (self.closing and not self.buffer):
            if not self.buffer:
                await asyncio.sleep(0.01)
                continue
            batch = [self.buffer.popleft() for _ in range(min(self.window, len(self.buffer)))]
            results = await asyncio.gather(
                *(client.publish(topic, payload, qos=1, timeout=3) for topic, payload in batch),
                return_exceptions=True,
            )
            failed = [m for m, r in zip(batch, results, strict=True) if isinstance(r, BaseException)]
            self.acked += len(batch) - len(failed)
            if failed:
                self.republished += len(failed)  # they go out again on the next connection
                self.buffer.extendleft(reversed(failed))
                raise aiomqtt.MqttError(f"{len(failed)} publishes without PUBACK")


async def offer(stream: Stream, publisher: Publisher, rate: float) -> float:
    """Hand the stream to the publisher at `rate` messages/s (it buffers what it cannot send yet);
    the monotonic time of the first message."""
    t0 = time.monotonic()
    for message in stream.messages:
        publisher.put(message.topic, stream.payload(message))
        lag = t0 + (message.seq + 1) / rate - time.monotonic()
        if lag > 0:
            await asyncio.sleep(lag)
    return t0


def committed(commits: Path, stream: Stream) -> Counter[int]:
    """How many times each message's effect was committed (seq → count), from the commit log."""
    counts: Counter[int] = Counter()
    text = commits.read_text() if commits.exists() else ""
    for line in text.splitlines():
        key, _, ts = line.partition(" ")
        seq = stream.stamps.get((key, int(ts)))
        assert seq is not None, f"the commit log names a message never sent: {line!r}"
        counts[seq] += 1
    return counts


async def settle(predicate: Callable[[], bool], within: float) -> bool:
    """Wait up to `within` s for `predicate`; whether it holds (the caller reports, then asserts)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.1)


async def incidents(api_port: int) -> list[dict[str, Any]]:
    """Every incident the API lists (all states), page by page."""
    found: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as http:
        for page in range(50):  # bounded: 50,000 incidents
            response = await http.get(
                "/incidents", params={"limit": 1000, "offset": page * 1000}, headers=headers
            )
            assert response.status_code == 200, response.text
            batch = response.json()
            found += batch
            if len(batch) < 1000:
                return found
    raise AssertionError("more incidents than expected")


def notified(hook: HttpReceiver) -> Counter[tuple[int, int, str]]:
    """(incident id, step, person) → how many webhook requests told it."""
    counts: Counter[tuple[int, int, str]] = Counter()
    for request in hook.requests:
        body = request.json()
        for incident_id in body["notification"]["incident_ids"]:
            counts[(incident_id, body["notification"]["step"], body["person"])] += 1
    return counts


@dataclass
class Outcome:
    """The figures a fault test prints and asserts on."""

    published: int
    alarm_conditions: int
    processed: int  # distinct messages whose effect was committed
    redelivered: int  # commits beyond the first: messages the broker delivered again
    lost: int
    incidents: int
    duplicate_incidents: int
    missing_incidents: int
    unexpected_incidents: int
    notifications_expected: int
    notifications_delivered: int  # distinct (incident, step, person)
    notifications_duplicated: int
    notifications_missing: int
    webhook_requests: int
    lost_seqs: list[int] = field(default_factory=list)  # the first lost messages, to look into

    def lines(self) -> list[str]:
        return [f"  {name:<26} {value}" for name, value in vars(self).items() if name != "lost_seqs"]


async def outcome(
    stream: Stream, commits: Path, api_port: int, hook: HttpReceiver, published: int
) -> Outcome:
    counts = committed(commits, stream)
    listed = await incidents(api_port)
    per_key = Counter(f"{i['estate']}/{i['device']}/{i['rule']}" for i in listed)
    ids = {f"{i['estate']}/{i['device']}/{i['rule']}": i["id"] for i in listed}
    expected = {
        (ids[key], step, f"{role}-{key.split('/')[0]}")
        for key in stream.alarm_keys
        if key in ids
        for step, role in enumerate(("cr", "dm"))
    }
    told = notified(hook)
    return Outcome(
        published=published,
        alarm_conditions=len(stream.alarm_keys),
        processed=len(counts),
        redelivered=sum(n - 1 for n in counts.values()),
        lost=sum(1 for m in stream.messages[:published] if m.seq not in counts),
        incidents=len(listed),
        duplicate_incidents=sum(n - 1 for n in per_key.values()),
        missing_incidents=len(stream.alarm_keys - set(per_key)),
        unexpected_incidents=len(set(per_key) - stream.alarm_keys),
        notifications_expected=len(expected),
        notifications_delivered=len(set(told) & expected),
        notifications_duplicated=sum(n - 1 for n in told.values()),
        notifications_missing=len(expected - set(told)),
        webhook_requests=len(hook.requests),
        lost_seqs=[m.seq for m in stream.messages[:published] if m.seq not in counts][:20],
    )
