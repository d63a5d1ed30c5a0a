"""Incident lifecycle and the SQLite store: dedup, reactivation, ack, durable round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.alerts import Transition
from gateway.incidents import IncidentError, IncidentService, alarm_state
from gateway.model import AlarmState, IncidentState, ManualClock, Priority
from gateway.store import IncidentQuery, SqliteStore


def tr(active: bool, key: str = "e1/d1/r1", ts: float = 1.0) -> Transition:
    estate, device, rule = key.split("/")
    return Transition(key, estate, device, rule, Priority.HIGH, active, ts, 1, "中文", "english")


@pytest.fixture
async def service(tmp_path: Path) -> IncidentService:
    store = SqliteStore(tmp_path / "t.db")
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


async def test_store_survives_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    await store.open()
    svc = IncidentService(store, ManualClock())
    await svc.start()
    await svc.apply([tr(True, "e1/d1/a"), tr(True, "e2/d9/b")])
    await store.close()

    reopened = SqliteStore(tmp_path / "t.db")
    await reopened.open()
    svc2 = IncidentService(reopened, ManualClock())
    assert sorted(await svc2.start()) == ["e1/d1/a", "e2/d9/b"]
    await svc2.apply([tr(True, "e1/d1/a")])  # still active: no second incident
    assert len(await svc2.list(IncidentQuery())) == 2
    scoped = await svc2.list(IncidentQuery(estates=frozenset({"e2"})))
    assert [i.estate for i in scoped] == ["e2"]
    assert await svc2.list(IncidentQuery(estates=frozenset())) == []
    await reopened.close()
