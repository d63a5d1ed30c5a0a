"""The batched inbound MQTT path (drivers/transports/mqtt_inbox.py) against a real Mosquitto.

It frames the socket itself instead of paho, so these tests feed it what framing gets wrong: payloads
larger than a read chunk (cut across reads, multi-byte remaining lengths), MQTT 5 properties it must
skip, both protocol versions; and they check the two guarantees it carries: a message is acknowledged
only by `ack_many` (else the broker redelivers it to the persistent session), and the messages read but
not yet acknowledged never exceed the bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.transports.mqtt_inbox import CHUNK, Delivery, Inbox
from gateway.runtime.broker import MosquittoProcess

HOST = "127.0.0.1"


@asynccontextmanager
async def consumer(
    port: int, client_id: str, topic: str, protocol: str, high: int = 1000, subscribe: bool = True
) -> AsyncIterator[tuple[aiomqtt.Client, Inbox]]:
    if protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        options: dict[str, object] = {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False,
                                      "properties": props}  # fmt: skip
    else:
        options = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
    client = aiomqtt.Client(HOST, port, identifier=client_id, timeout=5, **options)  # type: ignore[arg-type]
    client._client.manual_ack_set(True)
    inbox = Inbox(client, high)
    inbox.install()
    async with client:
        if subscribe:  # the session keeps it; a paused reader would not read the SUBACK behind a backlog
            await client.subscribe(topic, qos=1, timeout=10)
        yield client, inbox


async def publish(port: int, messages: list[tuple[str, bytes]], protocol: str) -> None:
    """A separate aiomqtt publisher at QoS 1; in MQTT 5 each message carries user properties and a
    content type, which the inbox must skip."""
    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(HOST, port, identifier=f"pub-{time.monotonic_ns()}", protocol=version) as pub:
        for topic, payload in messages:
            props = None
            if protocol == "5":
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.UserProperty = [("origin", "测试"), ("n", str(len(payload)))]
                props.ContentType = "application/json"
            await pub.publish(topic, payload, qos=1, properties=props, timeout=10)


async def take_all(inbox: Inbox, count: int, within: float = 10.0) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            await inbox.wait()
            got += inbox.take(100)
    return got


async def nothing_more(inbox: Inbox, seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)
    assert inbox.backlog == 0, [m[0] for m in inbox.messages]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_frames_cut_across_reads_arrive_whole_in_order(broker: MosquittoProcess, protocol: str) -> None:
    sizes = [10, 3 * CHUNK + 17, 2, 200_000, 127, 128, 16_383, 16_384, 16_385, 1, CHUNK - 5, 90]
    messages = [(f"inbox/{protocol}/frames/{i}", bytes([65 + i % 26]) * n) for i, n in enumerate(sizes)]
    async with consumer(broker.port, f"inbox-frames-{protocol}", f"inbox/{protocol}/frames/+", protocol) as (
        _,
        inbox,
    ):
        await publish(broker.port, messages, protocol)
        got = await take_all(inbox, len(messages))
        assert [(topic.decode(), payload) for topic, payload, _, _ in got] == messages
        assert all(qos == 1 and mid > 0 for _, _, mid, qos in got)
        inbox.ack_many([mid for _, _, mid, _ in got], len(got))
        await asyncio.sleep(0.2)  # the PUBACKs leave in one write
    # acknowledged: the persistent session has nothing to redeliver
    async with consumer(broker.port, f"inbox-frames-{protocol}", f"inbox/{protocol}/frames/+", protocol) as (
        _,
        inbox,
    ):
        await nothing_more(inbox)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_unacknowledged_messages_are_redelivered(broker: MosquittoProcess, protocol: str) -> None:
    topic = f"inbox/{protocol}/redeliver"
    messages = [(f"{topic}/{i}", f'{{"n": {i}}}'.encode()) for i in range(20)]
    async with consumer(broker.port, f"inbox-redo-{protocol}", f"{topic}/+", protocol) as (_, inbox):
        await publish(broker.port, messages, protocol)
        first = await take_all(inbox, 20)
        inbox.ack_many([mid for _, _, mid, _ in first[:5]], 5)  # only the first five are committed
        await asyncio.sleep(0.2)
    async with consumer(broker.port, f"inbox-redo-{protocol}", f"{topic}/+", protocol) as (_, inbox):
        again = await take_all(inbox, 15)
        assert [payload for _, payload, _, _ in again] == [payload for _, payload in messages[5:]]
        inbox.ack_many([mid for _, _, mid, _ in again], 15)
        await nothing_more(inbox)


async def test_read_but_unacknowledged_messages_stay_bounded(broker: MosquittoProcess) -> None:
    """3,000 queued messages, a bound of 40: reading pauses at the bound and resumes at half of it."""
    topic = "inbox/bound"
    async with consumer(broker.port, "inbox-bound", f"{topic}/+", "5", high=40):
        pass  # the session exists; now queue the backlog while it is away
    await publish(broker.port, [(f"{topic}/{i % 7}", b'{"x": 1}') for i in range(3000)], "3.1.1")
    async with consumer(broker.port, "inbox-bound", f"{topic}/+", "5", high=40, subscribe=False) as (
        _,
        inbox,
    ):
        held_max, done = 0, 0
        async with asyncio.timeout(30):
            while done < 3000:
                await inbox.wait()
                batch = inbox.take(15)
                held_max = max(held_max, inbox.backlog + inbox.unacked)
                await asyncio.sleep(0)  # the reader runs while this batch is "committing"
                held_max = max(held_max, inbox.backlog + inbox.unacked)
                inbox.ack_many([mid for _, _, mid, _ in batch], len(batch))
                done += len(batch)
        assert held_max <= 40
        assert inbox.pauses > 0
        await nothing_more(inbox)


async def test_acks_after_the_connection_is_gone_are_not_sent(broker: MosquittoProcess) -> None:
    """An ack for a previous connection must not go out on a new one: the broker redelivers instead."""
    topic = "inbox/stale"
    async with consumer(broker.port, "inbox-stale", f"{topic}/+", "3.1.1") as (_, old):
        await publish(broker.port, [(f"{topic}/a", b"1")], "3.1.1")
        stale = await take_all(old, 1)
    old.ack_many([stale[0][2]], 1)  # committed too late: the connection is closed
    assert old.closed
    async with consumer(broker.port, "inbox-stale", f"{topic}/+", "3.1.1") as (_, inbox):
        again = await take_all(inbox, 1)
        assert again[0][1] == b"1"
        inbox.ack_many([again[0][2]], 1)


def test_paho_still_has_the_internals_we_use() -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    for name in (
        "_packet_handle",
        "_in_packet",
        "_sock_recv",
        "_loop_rc_handle",
        "_packet_queue",
        "_protocol",
    ):
        assert hasattr(client, name), name
