"""The two-person rule's requests on both store engines (`make_store`: SQLite file and PostgreSQL):
they survive a restart, list by estate, and two gateway instances on one database confirming the same
request at once execute it once."""

from __future__ import annotations

import asyncio

import pytest

from gateway.auth.two_person import DangerRule, DualControl, Refused
from gateway.model import ManualClock
from tests.integration.postgres import StoreFactory

pytestmark = pytest.mark.integration
RULE = DangerRule(frozenset({"supervisor", "admin"}), within=120.0)


async def test_requests_survive_a_restart_and_list_by_estate(make_store: StoreFactory) -> None:
    clock = ManualClock(5000.0)
    store = make_store("t")
    await store.open()
    dual = DualControl(store, clock)
    stop = await dual.request("sunshine", "gen-1", "stop", "停电检修 mains work", "duty.a", RULE)
    clock.advance(1)
    reset = await dual.request("maple", "fire-1", "reset", "已复位 checked", "fcr.wang", RULE)
    await store.close()

    again = make_store("t")  # the gateway restarted: a new store on the same database
    await again.open()
    dual = DualControl(again, clock)
    assert [r.id for r in await dual.recent(None)] == [reset.id, stop.id]  # newest first
    assert [r.id for r in await dual.recent(frozenset({"sunshine"}))] == [stop.id]
    found = await dual.get(stop.id, frozenset({"sunshine"}))
    assert found == stop  # every field as written, 中文 included
    assert await dual.get(stop.id, frozenset({"maple"})) is None
    done = await dual.decide(stop.id, None, "duty.b", "supervisor", None, True)
    await dual.finish(done, "ok", "control_mode = stop")
    clock.advance(200)  # the maple request expires unconfirmed
    states = {r.id: (r.state, r.outcome) for r in await dual.recent(None)}
    assert states == {stop.id: ("confirmed", "ok"), reset.id: ("expired", None)}
    assert await dual.recent(None, horizon=100) == []
    await again.close()


async def test_two_instances_confirming_at_once_execute_once(make_store: StoreFactory) -> None:
    clock = ManualClock(5000.0)
    first, second = make_store("shared"), make_store("shared")
    await first.open()
    await second.open()
    one, two = DualControl(first, clock), DualControl(second, clock)
    wins = 0
    for round_ in range(10):
        asked = await one.request("sunshine", "gen-1", "stop", f"round {round_}", "duty.a", RULE)
        results = await asyncio.gather(
            one.decide(asked.id, None, "duty.b", "supervisor", None, True),
            two.decide(asked.id, None, "boss", "admin", None, True),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, Refused)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].reason == "decided"
        stored = await two.get(asked.id, None)
        assert stored is not None and stored.decided_by == won[0].decided_by
        wins += 1
    assert wins == 10
    await first.close()
    await second.close()
