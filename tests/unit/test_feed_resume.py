"""The live feed's replay ring: exact resume (no gap, no repeat), resync when it cannot be exact, scoping,
and the device-state observer's coalescing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo, Transition
from gateway.api import ApiContext, TokenAuth
from gateway.api.feed import feed_router
from gateway.config import ApiTokenConfig
from gateway.incidents import (
    DeviceState,
    DeviceStateTracker,
    IncidentChange,
    IncidentService,
    IncidentUpdate,
    LiveFeed,
    LiveItem,
    LiveSubscription,
    Resync,
)
from gateway.model import Incident, IncidentState, ManualClock, Priority, Quality, Reading, SystemClock
from gateway.store import SqliteStore


def device(feed: LiveFeed, estate: str, name: str = "d1", value: float = 0.0) -> None:
    feed.publish_device(DeviceState(estate, name, True, 0, None, {"p": value}, 0.0))


def incident(estate: str, incident_id: int) -> IncidentChange:
    inc = Incident(
        incident_id, estate, "d1", "r1", f"{estate}/d1/r1", Priority.HIGH, IncidentState.OPEN, "t", 1.0, 1.0
    )
    return IncidentChange(inc, new=True)


def drain(sub: LiveSubscription) -> list[LiveItem | Resync]:
    out: list[LiveItem | Resync] = []
    while (got := sub.get_nowait()) is not None:
        out.append(got)
    return out


def seqs(items: list[LiveItem] | list[LiveItem | Resync] | None) -> list[int]:
    assert items is not None
    return [i.seq for i in items if isinstance(i, LiveItem)]


def test_one_sequence_across_incidents_and_devices() -> None:
    feed = LiveFeed()
    sub = feed.subscribe()
    feed.publish_incidents([incident("a", 1), incident("a", 2)])
    device(feed, "a")
    got = drain(sub)
    assert seqs(got) == [1, 2, 3]
    assert [type(i.body) for i in got if isinstance(i, LiveItem)] == [
        IncidentUpdate,
        IncidentUpdate,
        DeviceState,
    ]


def test_incident_items_are_copies_as_committed() -> None:
    feed = LiveFeed()
    change = incident("a", 1)
    feed.publish_incidents([change])
    change.incident.state = IncidentState.ACKNOWLEDGED  # the manager mutates its own object later
    [item] = feed.replay(0, feed.epoch) or []
    assert isinstance(item.body, IncidentUpdate) and item.body.incident.state is IncidentState.OPEN


def test_reconnect_replays_exactly_the_missed_items_then_goes_live() -> None:
    feed = LiveFeed(ring_size=100)
    first = feed.subscribe()
    for n in range(10):
        device(feed, "a", value=n)
    received = seqs(drain(first))
    first.close()  # the client disconnects after seq 10 ...
    for n in range(5):  # ... and misses 11..15
        device(feed, "a", value=n)
    second, replay = feed.attach(received[-1], feed.epoch)
    for n in range(3):  # live after the reconnect
        device(feed, "a", value=n)
    resumed = seqs(replay) + seqs(drain(second))
    assert received + resumed == list(range(1, 19))  # no gap, no repeat


def test_reconnect_at_the_head_replays_nothing() -> None:
    feed = LiveFeed(ring_size=5)
    for _ in range(7):
        device(feed, "a")
    assert feed.replay(7, feed.epoch) == []
    assert LiveFeed().replay(0, None) is None  # a fresh client has no position: resync
    empty = LiveFeed(epoch="e")
    assert empty.replay(0, "e") == []  # nothing published yet


def test_resync_when_too_old_wrong_epoch_or_from_the_future() -> None:
    feed = LiveFeed(ring_size=5)
    for _ in range(12):
        device(feed, "a")
    assert feed.oldest == 8
    assert seqs(feed.replay(7, feed.epoch)) == [8, 9, 10, 11, 12]  # the ring still holds since + 1
    assert feed.replay(6, feed.epoch) is None  # 7 has left the ring
    assert feed.replay(10, "another-process") is None
    assert feed.replay(13, feed.epoch) is None  # a seq this process never issued


def test_overflow_replaces_the_queue_with_a_resync_and_the_newest_item() -> None:
    feed = LiveFeed()
    sub = feed.subscribe(maxsize=3)
    for _ in range(3):
        device(feed, "a")
    device(feed, "a")  # the fourth does not fit
    got = drain(sub)
    assert isinstance(got[0], Resync) and got[0].seq == 3
    assert seqs(got) == [4]
    assert sub.overflows == 1
    device(feed, "a")
    assert seqs(drain(sub)) == [5]  # and live again


def test_scope_filters_live_items_and_the_replay() -> None:
    feed = LiveFeed()
    only_a = lambda item: item.estate == "a"  # noqa: E731
    sub, replay = feed.attach(0, feed.epoch, only_a)
    assert replay == []
    feed.publish_incidents([incident("a", 1), incident("b", 2)])
    device(feed, "b")
    device(feed, "a")
    got = drain(sub)
    assert seqs(got) == [1, 4]  # seq skips over the other estate's items
    assert all(isinstance(i, LiveItem) and i.estate == "a" for i in got)
    assert seqs(feed.replay(0, feed.epoch, only_a)) == [1, 4]


def test_out_of_scope_items_take_no_room_in_a_queue() -> None:
    feed = LiveFeed()
    sub = feed.subscribe(lambda item: item.estate == "a", maxsize=2)
    for _ in range(50):
        device(feed, "b")
    device(feed, "a")
    assert seqs(drain(sub)) == [51] and sub.overflows == 0


async def test_get_waits_for_the_next_item() -> None:
    feed = LiveFeed()
    sub = feed.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    device(feed, "a")
    got = await asyncio.wait_for(waiter, 1)
    assert isinstance(got, LiveItem) and got.seq == 1
    sub.close()
    assert feed.subscribers == 0


# -- device state -------------------------------------------------------------------------------
def reading(value: float, point: str = "pressure", quality: Quality = Quality.GOOD) -> Reading:
    return Reading(0, "a", "septic-1", point, value, quality=quality)


def alarm(active: bool, priority: Priority = Priority.HIGH, rule: str = "high_pressure") -> Transition:
    key = f"a/septic-1/{rule}"
    return Transition(key, "a", "septic-1", rule, priority, active, 1.0, 3.2, "高压", "high")


def tracker(online: dict[str, bool | None]) -> tuple[LiveFeed, DeviceStateTracker, ManualClock]:
    feed, clock = LiveFeed(), ManualClock()
    devices = [DeviceInfo("a", "septic-1", "septic_pressure")]
    return feed, DeviceStateTracker(feed, devices, lambda e, d: online["v"], clock), clock


def states(sub: LiveSubscription) -> list[DeviceState]:
    return [i.body for i in drain(sub) if isinstance(i, LiveItem) and isinstance(i.body, DeviceState)]


def test_values_are_coalesced_to_one_item_per_second() -> None:
    online: dict[str, bool | None] = {"v": True}
    feed, track, clock = tracker(online)
    sub = feed.subscribe()
    track.observe([reading(1.0)], [])
    for n in range(500):  # a flood of readings within the same second
        track.observe([reading(2.0 + n)], [])
    assert [s.values for s in states(sub)] == [{"pressure": 1.0}]
    assert track.flush() == 0  # nothing due yet
    clock.advance(1.0)
    assert track.flush() == 1
    assert [s.values for s in states(sub)] == [{"pressure": 501.0}]  # the latest value, once
    clock.advance(5.0)
    assert track.flush() == 0 and states(sub) == []  # quiet: nothing to say


def test_online_and_alarm_changes_are_published_at_once() -> None:
    online: dict[str, bool | None] = {"v": True}
    feed, track, clock = tracker(online)
    sub = feed.subscribe()
    track.observe([reading(1.0)], [])
    track.observe([reading(1.5)], [alarm(True)])
    track.observe([], [alarm(True, Priority.CRITICAL, "burst")])
    online["v"] = False
    track.observe([], [alarm(True, Priority.MEDIUM, "offline_septic_pressure")])
    track.observe([], [alarm(False, Priority.CRITICAL, "burst")])
    got = [(s.online, s.alarms, s.priority) for s in states(sub)]
    assert got == [
        (True, 0, None),
        (True, 1, Priority.HIGH),
        (True, 2, Priority.CRITICAL),
        (False, 3, Priority.CRITICAL),
        (False, 2, Priority.HIGH),
    ]
    clock.advance(1.0)
    track.flush()
    assert states(sub) == []  # the value 1.5 went out with the alarm change


def test_bad_quality_removes_the_value_and_points_are_bounded() -> None:
    online: dict[str, bool | None] = {"v": True}
    _, track, _ = tracker(online)
    track.max_points = 2
    track.observe([reading(1.0), reading(2.0, "level"), reading(3.0, "third")], [])
    track.observe([reading(0.0, quality=Quality.BAD)], [])
    state = track.state("a", "septic-1")
    assert state is not None and state.values == {"level": 2.0}
    assert track.points_dropped == 1
    assert track.state("a", "nope") is None


def test_unknown_devices_are_ignored_and_alarms_restored() -> None:
    online: dict[str, bool | None] = {"v": None}
    feed, track, _ = tracker(online)
    sub = feed.subscribe()
    track.restore_alarms(
        [("a", "septic-1", "a/septic-1/high_pressure", Priority.HIGH), ("b", "x", "k", Priority.LOW)]
    )
    track.observe([Reading(0, "b", "x", "p", 1.0)], [])
    assert states(sub) == []
    state = track.state("a", "septic-1")
    assert state is not None and (state.alarms, state.priority) == (1, Priority.HIGH)


async def test_the_coalesced_item_is_sent_by_a_timer_on_the_loop() -> None:
    feed = LiveFeed()
    track = DeviceStateTracker(
        feed, [DeviceInfo("a", "septic-1", "x")], lambda e, d: True, SystemClock(), 0.1
    )
    sub = feed.subscribe()
    track.observe([reading(1.0)], [])
    track.observe([reading(2.0)], [])
    first = await asyncio.wait_for(sub.get(), 1)
    second = await asyncio.wait_for(sub.get(), 1)  # within ~0.1 s, by the timer
    assert isinstance(first, LiveItem) and isinstance(second, LiveItem)
    assert isinstance(second.body, DeviceState) and second.body.values == {"pressure": 2.0}
    track.close()


def test_the_feed_keeps_each_device_latest_state_without_member_copies() -> None:
    feed = LiveFeed()
    device(feed, "a", value=1.0)
    device(feed, "a", value=2.0)
    device(feed, "b")
    assert {k: v.values for k, v in feed.devices.items()} == {
        ("a", "d1"): {"p": 2.0},
        ("b", "d1"): {"p": 0.0},
    }
    change = incident("a", 1)
    change.incident.members = {f"a/d{n}/r": "active" for n in range(500)}
    feed.publish_incidents([change])
    [item] = feed.replay(3, feed.epoch) or []
    assert isinstance(item.body, IncidentUpdate) and item.body.incident.members == {}


# -- over a real socket ---------------------------------------------------------------------------
@asynccontextmanager
async def feed_server(queue_size: int, ping_interval: float) -> AsyncIterator[tuple[LiveFeed, str]]:
    service = IncidentService(SqliteStore(":memory:"), ManualClock())  # the feed reads no store
    ctx = ApiContext(service, [], StatsRegistry(), TokenAuth([TOKEN]))
    app = FastAPI()
    app.include_router(feed_router(ctx, queue_size, ping_interval))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(250):
            if server.started:
                break
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield service.live, f"ws://127.0.0.1:{port}/feed/ws"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)


TOKEN = ApiTokenConfig(name="op", token="operator-token-0123456789", role="operator", estates=["a"])
HEADERS = {"Authorization": f"Bearer {TOKEN.token}"}


async def messages(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 2)) for _ in range(count)]


async def test_a_slow_client_is_told_to_resync_then_gets_every_later_item() -> None:
    async with (
        feed_server(queue_size=5, ping_interval=30) as (feed, url),
        connect(url, additional_headers=HEADERS) as ws,
    ):
        hello, first = await messages(ws, 2)
        assert (hello["type"], first["type"]) == ("hello", "resync")
        for n in range(100):  # without yielding to the sender: its queue overflows
            device(feed, "a", value=n)
            device(feed, "b", value=n)  # out of scope: never sent, takes no room
        [resync] = await messages(ws, 1)
        assert resync["type"] == "resync" and resync["epoch"] == feed.epoch
        expected = [seq for seq in range(resync["seq"] + 1, 200) if seq % 2 == 1]  # estate a's
        assert 0 < len(expected) <= 5
        assert [m["seq"] for m in await messages(ws, len(expected))] == expected


async def test_an_idle_client_gets_pings() -> None:
    async with (
        feed_server(queue_size=5, ping_interval=0.1) as (feed, url),
        connect(url, additional_headers=HEADERS) as ws,
    ):
        _, _, ping = await messages(ws, 3)
        assert ping["type"] == "ping"
        device(feed, "a")
        got = [m for m in await messages(ws, 3) if m["type"] != "ping"] or [{}]  # pings may come between
        assert got[0].get("seq") == 1
