"""The two-person rule's state machine (gateway/auth/two_person.py) on a real SQLite store with a manual
clock: who may confirm, when, and that a request is decided once; and when a rule applies."""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from drivers.stats import StatsRegistry
from gateway.alerts.instance import Transition
from gateway.api.auth import TokenAuth
from gateway.api.confirmations import _Plant
from gateway.api.context import ApiContext
from gateway.auth.two_person import DangerRule, DualControl, Refused
from gateway.incidents import IncidentService
from gateway.model import ManualClock, Priority
from gateway.store import SqliteStore

RULE = DangerRule(frozenset({"supervisor", "admin", "fire_control"}), within=120.0)


@pytest.fixture
async def dual() -> AsyncIterator[DualControl]:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        yield DualControl(store, ManualClock(1000.0))
    finally:
        await store.close()


def _clock(dual: DualControl) -> ManualClock:
    assert isinstance(dual.clock, ManualClock)
    return dual.clock


async def _refused(dual: DualControl, rid: str, user: str, role: str, job: str | None = None,
                   scope: frozenset[str] | None = None, confirm: bool = True) -> str:  # fmt: skip
    with pytest.raises(Refused) as caught:
        await dual.decide(rid, scope, user, role, job, confirm)
    return caught.value.reason


async def test_a_second_permitted_person_confirms_once(dual: DualControl) -> None:
    asked = await dual.request("sunshine", "gen-1", "stop", "mains back", "duty.a", RULE)
    assert asked.state == "pending" and asked.expires_at == 1120.0
    assert asked.confirm_by == ("admin", "fire_control", "supervisor")
    assert await _refused(dual, asked.id, "duty.a", "supervisor") == "same_user"
    assert await _refused(dual, asked.id, "guard.c", "operator", "guard") == "wrong_role"
    assert (
        await _refused(dual, asked.id, "maple.sup", "supervisor", scope=frozenset({"maple"})) == "not_found"
    )
    assert await _refused(dual, "no-such-id", "duty.b", "supervisor") == "not_found"
    _clock(dual).advance(60)
    done = await dual.decide(asked.id, frozenset({"sunshine"}), "duty.b", "supervisor", None, True)
    assert (done.state, done.decided_by, done.decided_at) == ("confirmed", "duty.b", 1060.0)
    assert await _refused(dual, asked.id, "boss", "admin") == "decided"  # executed once, never twice
    finished = await dual.finish(done, "ok", "control_mode = stop")
    stored = await dual.get(asked.id, None)
    assert stored is not None and (stored.outcome, stored.detail) == ("ok", "control_mode = stop")
    assert finished.outcome == "ok"


async def test_a_job_named_in_confirm_by_may_confirm(dual: DualControl) -> None:
    asked = await dual.request("sunshine", "fire-1", "reset", "检查完毕 checked", "guard.c", RULE)
    done = await dual.decide(asked.id, None, "fcr.wang", "operator", "fire_control", True)
    assert done.state == "confirmed" and done.requested_by == "guard.c"


async def test_expiry_at_the_boundary(dual: DualControl) -> None:
    asked = await dual.request("sunshine", "gen-1", "stop", "test", "duty.a", RULE)
    _clock(dual).advance(119.9)
    assert (await dual.recent(None))[0].state == "pending"
    _clock(dual).advance(0.1)  # expires_at itself is too late
    assert await _refused(dual, asked.id, "duty.b", "supervisor") == "expired"
    [listed] = await dual.recent(frozenset({"sunshine"}))
    assert listed.state == "expired" and await dual.recent(frozenset({"maple"})) == []


async def test_reject_by_the_requester_or_a_confirmer_but_not_a_stranger(dual: DualControl) -> None:
    first = await dual.request("sunshine", "gen-1", "stop", "test", "duty.a", RULE)
    withdrawn = await dual.decide(first.id, None, "duty.a", "operator", None, False)
    assert (withdrawn.state, withdrawn.decided_by) == ("rejected", "duty.a")
    assert await _refused(dual, first.id, "duty.b", "supervisor") == "decided"
    second = await dual.request("sunshine", "gen-1", "stop", "test", "duty.a", RULE)
    assert await _refused(dual, second.id, "guard.c", "operator", "guard", confirm=False) == "wrong_role"
    turned_down = await dual.decide(second.id, None, "duty.b", "supervisor", None, False)
    assert turned_down.state == "rejected"


@dataclass
class Plant:
    values: dict[str, float | int | bool | str] = field(default_factory=dict)
    alarms: set[tuple[str, str]] = field(default_factory=set)  # (estate, rule)

    def value(self, estate: str, device: str, point: str) -> float | int | bool | str | None:
        return self.values.get(point)

    def alarm_active(self, estate: str, rule_glob: str) -> bool:
        return any(e == estate and fnmatch.fnmatchcase(r, rule_glob) for e, r in self.alarms)


def test_when_a_rule_applies() -> None:
    who = frozenset({"supervisor"})
    on_load = DangerRule(who, 60, point="total_power", above=0)
    running = DangerRule(who, 60, point="engine_state", values=("running",))
    fire = DangerRule(who, 60, alarms=("fire_point_fire", "fire_confirmed*"))
    plant = Plant()
    assert on_load.applies(plant, "s", "gen-1")  # not reported yet: unknown is not safe
    plant.values.update(total_power=0, engine_state="stopped")
    assert not on_load.applies(plant, "s", "gen-1") and not running.applies(plant, "s", "gen-1")
    plant.values.update(total_power=42000, engine_state="running")
    assert on_load.applies(plant, "s", "gen-1") and running.applies(plant, "s", "gen-1")
    assert not fire.applies(plant, "s", "barrier")
    plant.alarms.add(("other", "fire_point_fire"))
    assert not fire.applies(plant, "s", "barrier")  # another estate's fire
    plant.alarms.add(("s", "fire_point_fault"))
    assert not fire.applies(plant, "s", "barrier")  # a faulty detector is no fire
    plant.alarms.add(("s", "fire_confirmed_state"))
    assert fire.applies(plant, "s", "barrier")
    assert DangerRule(who, 60).applies(Plant(), "s", "x")  # no condition: always
    assert on_load.describe() == "total_power > 0"
    assert fire.describe() == "alarm fire_point_fire | fire_confirmed* active"


async def test_the_api_reads_active_fire_alarms_from_the_incidents() -> None:
    """_Plant.alarm_active against a real IncidentService: a fire alarm of the estate makes the
    fire-lane barrier's `open` dangerous, another estate's does not, and its return to normal ends it."""
    store = SqliteStore(":memory:")
    await store.open()
    try:
        clock = ManualClock(1000.0)
        service = IncidentService(store, clock)
        await service.start()
        plant = _Plant(ApiContext(service, [], StatsRegistry(), TokenAuth([])))
        rule = DangerRule(frozenset({"supervisor"}), 60, alarms=("fire_point_fire",))

        def fire(estate: str, active: bool) -> Transition:
            key = f"{estate}/fire-1/fire_point_fire/L1-D001.fire"
            now = clock.now()
            return Transition(key, estate, "fire-1", "fire_point_fire", Priority.CRITICAL, active, now,
                              True, "火警", "fire")  # fmt: skip

        assert not rule.applies(plant, "sunshine", "barrier-east-out")
        await service.apply([fire("maple", True)])
        assert not rule.applies(plant, "sunshine", "barrier-east-out")
        await service.apply([fire("sunshine", True)])
        assert rule.applies(plant, "sunshine", "barrier-east-out")
        clock.advance(5)
        await service.apply([fire("sunshine", False)])
        assert not rule.applies(plant, "sunshine", "barrier-east-out")
    finally:
        await store.close()
