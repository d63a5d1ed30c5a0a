"""Incident lifecycle and the store (SQLite and PostgreSQL): dedup, reactivation, ack, durable round trip."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.alerts import Transition
from gateway.incidents import IncidentError, IncidentService, alarm_state
from gateway.model import AlarmState, IncidentState, ManualClock, Priority
from gateway.store import IncidentQuery
from tests.integration.postgres import StoreFactory


def tr(active: bool, key: str = "e1/d1/r1", ts: float = 1.0) -> Transition:
    estate, device, rule = key.split("/")
    return Transition(key, estate, device, rule, Priority.HIGH, active, ts, 1, "中文", "english")


@pytest.fixture
async def service(make_store: StoreFactory) -> IncidentService:
    store = make_store()
    await store.open()
    svc = IncidentService(store, ManualClock())
    await svc.start()
    return svc


async def test_repeated_activation_is_one_incident(service: IncidentService) -> None:
    await service.apply([tr(True)])
    await service.apply([tr(True), tr(True)])
    incidents = await service.list(IncidentQuery())
    assert len(incidents) == 1
    assert service.manager.deduplicated == 2


async def test_reactivation_joins_the_same_incident_and_needs_a_new_ack(service: IncidentService) -> None:
    [opened] = await service.apply([tr(True)])
    await service.acknowledge(opened.incident.id, "op1")
    await service.apply([tr(False, ts=2)])
    await service.apply([tr(True, ts=3)])
    incident = await service.get(opened.incident.id)
    assert incident is not None
    assert incident.state is IncidentState.OPEN
    assert [e.action for e in incident.timeline] == [
        "opened",
        "acknowledged",
        "alarm_returned_to_normal",
        "alarm_reactivated",
    ]
    assert len(await service.list(IncidentQuery())) == 1


async def test_alarm_states_follow_isa_18_2(service: IncidentService) -> None:
    [change] = await service.apply([tr(True)])
    incident = change.incident
    assert alarm_state(incident) is AlarmState.UNACK_ACTIVE
    await service.apply([tr(False)])
    assert alarm_state(incident) is AlarmState.UNACK_RTN
    await service.acknowledge(incident.id, "op1")
    assert alarm_state(incident) is AlarmState.NORMAL


async def test_ack_is_idempotent_and_recorded(service: IncidentService) -> None:
    [change] = await service.apply([tr(True)])
    first = await service.acknowledge(change.incident.id, "op1", source="10.0.0.5")
    second = await service.acknowledge(change.incident.id, "op2")
    assert first.acknowledged_by == second.acknowledged_by == "op1"
    stored = await service.get(change.incident.id)
    assert stored is not None
    acks = [e for e in stored.timeline if e.action == "acknowledged"]
    assert len(acks) == 1 and acks[0].actor == "op1" and acks[0].detail == {"source": "10.0.0.5"}


async def test_ack_of_unknown_incident_fails(service: IncidentService) -> None:
    with pytest.raises(IncidentError):
        await service.acknowledge(999, "op1")


async def test_store_survives_restart(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    svc = IncidentService(store, ManualClock())
    await svc.start()
    await svc.apply([tr(True, "e1/d1/a"), tr(True, "e2/d9/b")])
    await store.close()

    reopened = make_store()
    await reopened.open()
    svc2 = IncidentService(reopened, ManualClock())
    assert sorted(await svc2.start()) == ["e1/d1/a", "e2/d9/b"]
    await svc2.apply([tr(True, "e1/d1/a")])  # still active: no second incident
    assert len(await svc2.list(IncidentQuery())) == 2
    scoped = await svc2.list(IncidentQuery(estates=frozenset({"e2"})))
    assert [i.estate for i in scoped] == ["e2"]
    assert await svc2.list(IncidentQuery(estates=frozenset())) == []
    await reopened.close()


def _replace(t: Transition, **kw: object) -> Transition:
    return dataclasses.replace(t, **kw)  # type: ignore[arg-type]


async def test_latching_alarm_holds_until_acknowledged(service: IncidentService) -> None:
    [opened] = await service.apply([_replace(tr(True), latch=True)])
    await service.apply([_replace(tr(False, ts=2), latch=True)])  # detector reset at the panel
    incident = opened.incident
    assert incident.active and incident.latched
    assert alarm_state(incident) is AlarmState.UNACK_ACTIVE
    await service.acknowledge(incident.id, "op1")
    assert not incident.active and not incident.latched
    assert alarm_state(incident) is AlarmState.NORMAL
    stored = await service.get(incident.id)
    assert stored is not None and [e.action for e in stored.timeline] == [
        "opened",
        "condition_cleared_latched",
        "acknowledged",
        "alarm_returned_to_normal",
    ]


async def test_acknowledged_latching_alarm_clears_normally(service: IncidentService) -> None:
    [opened] = await service.apply([_replace(tr(True), latch=True)])
    await service.acknowledge(opened.incident.id, "op1")
    await service.apply([_replace(tr(False, ts=2), latch=True)])
    assert not opened.incident.active and alarm_state(opened.incident) is AlarmState.NORMAL


async def test_shelving_hides_and_expires(service: IncidentService) -> None:
    clock = service.clock
    assert isinstance(clock, ManualClock)
    [opened] = await service.apply([tr(True)])
    incident = await service.shelve(opened.incident.id, "op1", minutes=10, reason="sensor being replaced")
    assert alarm_state(incident) is AlarmState.SHELVED
    await service.apply([tr(False, ts=2)])
    await service.apply([tr(True, ts=3)])  # re-activation while shelved asks for nothing
    assert incident.state is IncidentState.OPEN and alarm_state(incident) is AlarmState.SHELVED
    clock.advance(9 * 60)
    await service.expire_shelves()
    assert incident.shelved_until is not None
    clock.advance(61)
    await service.expire_shelves()
    assert incident.shelved_until is None and alarm_state(incident) is AlarmState.UNACK_ACTIVE
    stored = await service.get(incident.id)
    assert stored is not None
    shelved = [e for e in stored.timeline if e.action in ("shelved", "unshelved")]
    assert [(e.action, e.actor) for e in shelved] == [("shelved", "op1"), ("unshelved", "system")]
    assert shelved[0].detail["reason"] == "sensor being replaced"


async def test_shelving_needs_a_future_expiry(service: IncidentService) -> None:
    [opened] = await service.apply([tr(True)])
    with pytest.raises(IncidentError):
        service.manager.shelve(opened.incident.id, "op1", ts=10.0, until=5.0, reason="x")


async def test_chattering_and_suppression_are_in_the_timeline(service: IncidentService) -> None:
    [opened] = await service.apply([_replace(tr(True), chattering=True)])
    await service.apply([_replace(tr(False, ts=2), reason="suppressed")])
    stored = await service.get(opened.incident.id)
    assert stored is not None and stored.chattering
    assert [e.action for e in stored.timeline] == ["opened", "chattering_detected", "alarm_suppressed"]
    assert service.manager.chattering == 1


async def test_new_fields_survive_a_restart(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    svc = IncidentService(store, ManualClock())
    await svc.start()
    [opened] = await svc.apply([_replace(tr(True), latch=True, chattering=True)])
    await svc.apply([_replace(tr(False, ts=2), latch=True)])
    await svc.shelve(opened.incident.id, "op1", minutes=5, reason="r")
    await store.close()
    reopened = make_store()
    await reopened.open()
    [incident] = await reopened.load_unresolved()
    assert incident.latched and incident.chattering and incident.shelved_until is not None
    await reopened.close()


def ztr(
    active: bool, key: str, ts: float, zone: str = "B3", priority: Priority = Priority.MEDIUM
) -> Transition:
    estate, device, rule = key.split("/")
    return Transition(key, estate, device, rule, priority, active, ts, 1, f"告警 {rule}", f"alarm {rule}",
                      zone=zone)  # fmt: skip


async def test_alarms_in_one_zone_within_the_window_become_one_incident(service: IncidentService) -> None:
    [first] = await service.apply([ztr(True, "e1/smoke-1/fire", 100.0)])
    await service.acknowledge(first.incident.id, "op1")
    [joined] = await service.apply([ztr(True, "e1/pump-2/septic_high", 160.0, priority=Priority.HIGH)])
    incident = joined.incident
    assert incident.id == first.incident.id and not joined.new
    assert incident.priority is Priority.HIGH  # the incident takes the most urgent member's priority
    assert incident.title_en == "alarm septic_high"  # ... and its title
    assert incident.state is IncidentState.OPEN  # the new alarm needs its own acknowledgement
    assert set(incident.members) == {"e1/smoke-1/fire", "e1/pump-2/septic_high"}
    [other_zone] = await service.apply([ztr(True, "e1/gate-9/forced", 170.0, zone="north")])
    [critical] = await service.apply([ztr(True, "e1/smoke-7/fire", 175.0, priority=Priority.CRITICAL)])
    assert critical.new  # a critical alarm is never buried in another incident
    [too_late] = await service.apply([ztr(True, "e1/gen-1/fuel", 400.0)])
    assert other_zone.new and too_late.new
    # A member clears, the incident stays active while the other is active; the last one clears it.
    await service.apply([ztr(False, "e1/smoke-1/fire", 200.0)])
    assert incident.active and incident.members["e1/smoke-1/fire"] == "normal"
    await service.apply([ztr(False, "e1/pump-2/septic_high", 210.0)])
    assert not incident.active
    assert service.manager.correlated == 1


async def test_flood_groups_new_alarms_into_one_incident_with_a_count(service: IncidentService) -> None:
    for i in range(10):  # ISA-18.2: more than 10 new alarms in 10 min is a flood
        [change] = await service.apply([ztr(True, f"e1/d{i}/r", 10.0 + i, zone="")])
        assert change.new
    changes = [await service.apply([ztr(True, f"e1/x{i}/r", 30.0 + i, zone="")]) for i in range(15)]
    floods = {c[0].incident.id for c in changes}
    assert len(floods) == 1 and changes[0][0].new and not changes[1][0].new
    flood = changes[-1][0].incident
    assert flood.rule == "alarm_flood" and len(flood.members) == 15
    assert flood.title_en == "Alarm flood: 15 alarms at e1"
    assert len(await service.list(IncidentQuery())) == 11  # 10 incidents + 1 flood, not 25
    other = await service.apply([ztr(True, "e2/d0/r", 40.0, zone="")])
    assert other[0].new and other[0].incident.rule == "r"  # the flood is per estate


async def test_members_survive_a_restart(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    svc = IncidentService(store, ManualClock())
    await svc.start()
    await svc.apply([ztr(True, "e1/a/r", 1.0), ztr(True, "e1/b/r", 2.0)])
    await svc.apply([ztr(False, "e1/a/r", 3.0)])
    await store.close()
    reopened = make_store()
    await reopened.open()
    svc2 = IncidentService(reopened, ManualClock())
    assert await svc2.start() == ["e1/b/r"]
    [incident] = await reopened.load_unresolved()
    assert incident.members == {"e1/a/r": "normal", "e1/b/r": "active"}
    await svc2.apply([ztr(True, "e1/b/r", 4.0)])  # still active: dedup, no new incident
    await svc2.apply([ztr(True, "e1/a/r", 5.0)])  # a member re-activates inside its incident
    assert len(await svc2.list(IncidentQuery())) == 1
    await reopened.close()


async def test_resolve_with_cause_releases_the_alarm_and_close_ends_it(service: IncidentService) -> None:
    [opened] = await service.apply([tr(True)])
    await service.apply([tr(False, ts=2)])
    resolved = await service.resolve(opened.incident.id, "op1", "false_alarm", note="spider in the detector")
    assert resolved.state is IncidentState.RESOLVED and resolved.cause == "false_alarm"
    [again] = await service.apply([tr(True, ts=3)])
    assert again.new and again.incident.id != opened.incident.id  # a new incident after resolve
    with pytest.raises(IncidentError):
        await service.close(again.incident.id, "sup1")  # only resolved incidents close
    closed = await service.close(opened.incident.id, "sup1")
    assert closed.state is IncidentState.CLOSED
    stored = await service.get(opened.incident.id)
    assert stored is not None and stored.cause == "false_alarm"
    assert [(e.action, e.actor) for e in stored.timeline][-2:] == [("resolved", "op1"), ("closed", "sup1")]
    assert stored.timeline[-2].detail == {
        "cause": "false_alarm",
        "still_active": False,
        "note": "spider in the detector",
    }


def fire(key: str, ts: float) -> Transition:
    estate, device, rule, _point = key.split("/")
    return Transition(key, estate, device, rule, Priority.CRITICAL, True, ts, True, "火警", "FIRE",
                      latch=True, first_out=True)  # fmt: skip


async def test_first_out_of_a_fire_sequence(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    svc = IncidentService(store, ManualClock())
    await svc.start()
    [first] = await svc.apply([fire("e1/panel/fire/L1-D007.fire", 1.0)])
    [second] = await svc.apply([fire("e1/panel/fire/L1-D008.fire", 2.0)])
    assert first.incident.first_out and not second.incident.first_out
    assert [e.action for e in first.incident.timeline] == ["opened", "first_out"]
    assert second.incident.timeline[-1].detail == {
        "first_out_incident": first.incident.id, "first_out_alarm": "e1/panel/fire/L1-D007.fire",
    }  # fmt: skip
    [other_estate] = await svc.apply([fire("e2/panel/fire/L1-D001.fire", 3.0)])
    assert other_estate.incident.first_out  # sequences are per estate
    await store.close()
    reopened = make_store()  # a restart keeps the sequence
    await reopened.open()
    svc2 = IncidentService(reopened, ManualClock())
    await svc2.start()
    [third] = await svc2.apply([fire("e1/panel/fire/L1-D009.fire", 4.0)])
    assert not third.incident.first_out
    await svc2.resolve(first.incident.id, "op1", "real")
    [next_sequence] = await svc2.apply([fire("e1/panel/fire/L2-D001.fire", 5.0)])
    assert next_sequence.incident.first_out  # the sequence ended with its first-out's resolution
    await reopened.close()


async def test_out_of_service_holds_alarms_and_releases_the_active_ones(make_store: StoreFactory) -> None:
    clock = ManualClock()
    store = make_store()
    await store.open()
    svc = IncidentService(store, clock)
    await svc.start()
    await svc.take_out_of_service("e1", "d1", "sup1", "replacing the oil sender", hours=2)
    assert await svc.apply([ztr(True, "e1/d1/oil", 1.0), ztr(True, "e1/d1/fuel", 2.0)]) == []
    await svc.apply([ztr(False, "e1/d1/fuel", 3.0)])  # cleared while out of service: never annunciated
    assert await svc.list(IncidentQuery()) == [] and svc.manager.held == 3
    await store.close()
    reopened = make_store()  # out-of-service survives a restart
    await reopened.open()
    svc2 = IncidentService(reopened, clock)
    await svc2.start()
    assert ("e1", "d1") in svc2.manager.out_of_service
    assert await svc2.apply([ztr(True, "e1/d1/oil", 4.0)]) == []
    [released] = await svc2.return_to_service("e1", "d1")
    assert released.new and released.incident.rule == "oil"  # still active when it came back
    assert ("e1", "d1") not in svc2.manager.out_of_service
    await svc2.take_out_of_service("e1", "d2", "sup1", "pump service", hours=1)
    clock.advance(3601)
    await svc2.expire_shelves()
    assert ("e1", "d2") not in svc2.manager.out_of_service  # an out-of-service with an end returns by itself
    await reopened.close()
