"""Estate leases on a real PostgreSQL server (gateway/cluster/ownership.py, gateway/store/postgres_cluster.py)
and the escalation-step scoping that goes with them, without gateway processes: two `LeaseOwnership`s on
one database, each with a handler that records what it was told to start and stop.

- claims split the estates between live instances (fair share) and never give one estate to two;
- a second instance joining gets half: the first hands its extras over (stopped before released);
- an instance that stops renewing loses its estates to the other once its leases run out, not before;
- an instance whose renewals fail stops its estates itself before its leases can run out (fencing);
- `release_firing` with a scope frees only the steps of the scope's estates whose claimer is dead (not in
  `live`) or the scope's own instance, never a live peer's step in mid-send.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.cluster import LeaseOwnership
from gateway.config.cluster import ClusterConfig
from gateway.incidents.manager import IncidentChange
from gateway.model import EscalationStep, Incident, IncidentState, Priority
from gateway.store.base import StepScope
from gateway.store.postgres import PostgresStore
from tests.integration.postgres import PostgresProcess

pytestmark = pytest.mark.integration

ESTATES = [f"e{n:02d}" for n in range(12)]


class Recorder:
    """An EstateHandler that only records (the App's part is tested by test_cluster_failover.py)."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.log: list[tuple[str, tuple[str, ...], bool]] = []

    async def adopt(self, estates: set[str], live: list[str]) -> None:
        assert not estates & self.running, "adopted twice"
        self.running |= estates
        self.log.append(("adopt", tuple(sorted(estates)), False))

    async def shed(self, estates: set[str], lost: bool) -> None:
        self.running -= estates
        self.log.append(("shed", tuple(sorted(estates)), lost))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def stores(postgres: PostgresProcess) -> AsyncIterator[list[PostgresStore]]:
    dsn = postgres.create_schema(f"c_{uuid.uuid4().hex[:12]}")
    opened = [PostgresStore(dsn, pool_max=2) for _ in range(3)]
    for store in opened:
        await store.open()
    yield opened
    for store in opened:
        await store.close()
    postgres.drop_schema(dsn.rsplit("=", 1)[1])


def owner(
    store: PostgresStore, name: str, handler: Recorder, lease: float = 3.0, **kw: object
) -> LeaseOwnership:
    config = ClusterConfig(enabled=True, lease_seconds=lease, renew_interval=lease / 4, **kw)  # type: ignore[arg-type]
    return LeaseOwnership(store, name, lambda: f"http://{name}", ESTATES, config, handler)


async def test_two_instances_split_the_estates_and_hand_over_to_a_newcomer(
    stores: list[PostgresStore],
) -> None:
    a, b = Recorder(), Recorder()
    first = owner(stores[0], "a", a)
    await first.cycle()
    assert a.running == set(ESTATES), "alone: every estate"
    second = owner(stores[1], "b", b)
    await second.cycle()  # b is live now, but a still holds everything: nothing free to claim
    assert b.running == set()
    await first.cycle()  # a sees two live instances: share 6, hands 6 over (stopped, then released)
    assert len(a.running) == 6 and a.log[-1][0] == "shed" and a.log[-1][2] is False
    await second.cycle()
    assert len(b.running) == 6 and not a.running & b.running
    for _ in range(3):  # stable: nobody moves any more
        await first.cycle()
        await second.cycle()
    assert len(a.log) == 2 and len(b.log) == 1
    leases = {x.estate: x.owner for x in await stores[2].estate_leases()}
    assert leases == {**{e: "a" for e in a.running}, **{e: "b" for e in b.running}}


async def test_a_silent_instance_loses_its_estates_only_after_its_lease(stores: list[PostgresStore]) -> None:
    a, b = Recorder(), Recorder()
    first, second = owner(stores[0], "a", a), owner(stores[1], "b", b)
    await first.cycle()
    await second.cycle()
    await first.cycle()
    await second.cycle()
    assert len(a.running) == len(b.running) == 6
    # a stops renewing (killed); b cycles on and must not take a's estates before the lease ran out
    stopped = time.monotonic()
    while len(b.running) < len(ESTATES):
        await second.cycle()
        if len(b.running) < len(ESTATES):
            assert time.monotonic() - stopped < 6.0, "not taken over within lease + 3 s"
            await asyncio.sleep(0.1)
    took = time.monotonic() - stopped
    assert took >= 3.0 - 0.3, f"taken over after {took:.2f}s, before a's 3 s lease could run out"
    leases = {x.estate: x.owner for x in await stores[2].estate_leases()}
    assert set(leases.values()) == {"b"}


async def test_an_instance_that_cannot_renew_stops_its_estates_before_the_lease_ends(
    stores: list[PostgresStore],
) -> None:
    a = Recorder()
    clock = Clock()
    config = ClusterConfig(enabled=True, lease_seconds=9.0, renew_interval=3.0)
    first = LeaseOwnership(stores[0], "a", lambda: "http://a", ESTATES, config, a, monotonic=clock)
    await first.cycle()
    assert a.running == set(ESTATES)
    await stores[0].close()  # its database connection is gone: every renewal fails from now on
    clock.now += 3.0
    await first.cycle()
    assert a.running == set(ESTATES), "3 s of a 9 s lease: keep going"
    clock.now += 3.0
    await first.cycle()  # 6 s since the last good renewal began = lease - margin (3 s): stop now
    assert a.running == set() and a.log[-1] == ("shed", tuple(ESTATES), True)
    assert first.stats.lost == len(ESTATES) and first.stats.renew_failures == 2


async def test_release_firing_frees_only_dead_or_own_claims_of_the_scope(stores: list[PostgresStore]) -> None:
    store = stores[0]
    incidents = []
    for estate in ("e00", "e01"):
        incident = Incident(
            0, estate, "d1", "r", f"{estate}/d1/r", Priority.HIGH, IncidentState.OPEN, "t", 1.0, 1.0
        )
        incidents.append(incident)
    await store.commit([IncidentChange(i, new=True) for i in incidents])
    steps = [EscalationStep(None, i.id, "p", n, 0, 1.0) for i in incidents for n in range(3)]
    await store.plan_escalation(steps)
    e00, e01 = frozenset({"e00"}), frozenset({"e01"})
    assert len(await store.claim_due_steps(5.0, limit=1, scope=StepScope("dead", e00))) == 1
    assert len(await store.claim_due_steps(5.0, limit=1, scope=StepScope("live", e00))) == 1
    assert len(await store.claim_due_steps(5.0, limit=1, scope=StepScope("me", e00))) == 1
    assert len(await store.claim_due_steps(5.0, limit=9, scope=StepScope("dead", e01))) == 3
    assert await store.claim_due_steps(5.0, scope=StepScope("x", e00)) == []  # all of e00's are firing
    # "me" adopts e00: its own leftover and the dead claimer's go back, the live peer's stays firing
    assert await store.release_firing(StepScope("me", e00), live=["me", "live"]) == 2
    assert await store.release_firing(StepScope("me", e00), live=["me", "live"]) == 0
    again = await store.claim_due_steps(6.0, scope=StepScope("me", e00))
    assert len(again) == 2 and {s.incident_id for s in again} == {incidents[0].id}
    assert (
        await store.next_due(StepScope("me", e00)) is None
        and await store.next_due(StepScope("me", e01)) is None
    )
