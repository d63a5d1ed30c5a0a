"""Store behaviours on both engines (one test body, `make_store` runs it on SQLite and PostgreSQL), then
what only PostgreSQL has: two instances claiming escalation steps at once, a server restart mid-commit,
migrations raced by two instances, and a whole estate run on `store.engine: postgres`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.sim.host import SimulationHost
from gateway.auth.records import ApiKey, Session, User
from gateway.config import parse_config
from gateway.config.schema import StoreConfig
from gateway.incidents import Grouping, IncidentService
from gateway.model import AuditEntry, EscalationStep, ManualClock, OutOfService, VisitorPass
from gateway.runtime.broker import MosquittoProcess, free_port
from gateway.store import IncidentQuery, PostgresStore, Store, StoreError, build_store, store_label
from gateway.store.postgres_pool import dsn_label
from gateway.store.postgres_schema import MIGRATIONS
from tests.integration.postgres import PostgresProcess, StoreFactory
from tests.integration.stack import Stack, site_yaml
from tests.unit.test_incidents import tr, ztr

pytestmark = pytest.mark.integration
NO_GROUPING = Grouping(correlation_window=0, flood_count=100_000)  # one incident per alarm


async def _opened(make_store: StoreFactory, name: str = "t") -> tuple[Store, IncidentService]:
    store = make_store(name)
    await store.open()
    service = IncidentService(store, ManualClock(100.0), grouping=NO_GROUPING)
    await service.start()
    return store, service


# -- the same behaviour on both engines -----------------------------------------------------------


async def test_ids_order_timeline_and_json_detail(make_store: StoreFactory) -> None:
    store, svc = await _opened(make_store)
    await svc.apply([tr(True, "e1/d1/a", 1.0)])
    await svc.apply([tr(True, "e2/d2/b", 2.0), tr(True, "e1/d3/c", 2.0)])
    listed = await store.list_incidents(IncidentQuery())
    assert [(i.id, i.alarm_key) for i in listed] == [(3, "e1/d3/c"), (2, "e2/d2/b"), (1, "e1/d1/a")]
    assert [i.id for i in await store.list_incidents(IncidentQuery(limit=1, offset=1))] == [2]
    assert [i.id for i in await store.list_incidents(IncidentQuery(estates=frozenset({"e1"})))] == [3, 1]
    await svc.acknowledge(2, "op", note="已到现场")
    await svc.apply([tr(False, "e1/d1/a", 3.0)])
    await svc.resolve(1, "操作员", "false_alarm", note="蜘蛛 ✓")
    full = await store.get_incident(1)
    assert full is not None and full.timeline[-1].actor == "操作员"
    assert list(full.timeline[-1].detail.items()) == [  # JSON detail as given, key order included
        ("cause", "false_alarm"), ("still_active", False), ("note", "蜘蛛 ✓"),
    ]  # fmt: skip
    assert (
        isinstance(full.opened_at, float) and full.opened_at == 1.0 and full.members == {"e1/d1/a": "normal"}
    )
    assert await store.get_incident(99) is None
    assert [(i.id, i.state.value) for i in await store.load_unresolved()] == [
        (2, "acknowledged"),
        (3, "open"),
    ]
    await store.close()


async def test_windows_audit_out_of_service_and_passes(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    await store.commit([], {"e1/d1/burst": {"": [1.0, 2.5]}, "e1/d1/none": {"": []}})
    assert await store.load_windows() == {"e1/d1/burst": {"": [1.0, 2.5]}}
    await store.commit([], {"e1/d1/burst": {"": []}})
    assert await store.load_windows() == {}
    for n, estate in enumerate(["b", "a", "b"]):
        entry = AuditEntry(
            float(n), "li", "api", "barrier.open", estate, "gate-1", "ok", {"n": n, "门": "北"}
        )
        await store.record_audit(entry)
    assert [e.detail["n"] for e in await store.list_audit(None)] == [2, 1, 0]
    assert [e.detail for e in await store.list_audit(frozenset({"a"}))] == [{"n": 1, "门": "北"}]
    assert await store.list_audit(frozenset()) == []
    assert len(await store.list_audit(None, limit=2)) == 2
    await store.set_out_of_service(OutOfService("e1", "pump", 1.0, "sup", "oil", None), "e1", "pump")
    await store.set_out_of_service(OutOfService("e1", "pump", 2.0, "sup", "oil 2", 9.0), "e1", "pump")
    assert await store.load_out_of_service() == [OutOfService("e1", "pump", 2.0, "sup", "oil 2", 9.0)]
    await store.set_out_of_service(None, "e1", "pump")
    assert await store.load_out_of_service() == []
    passes = [VisitorPass(None, "e1", f"沪A{n}", "guest", 0.0, 10.0 * (n + 1), "li", 0.0) for n in range(3)]
    stored = [await store.add_visitor_pass(p) for p in passes]
    assert [p.id for p in stored] == [1, 2, 3]
    assert await store.delete_visitor_pass("other", 2) is None
    assert await store.delete_visitor_pass("e1", 2) == stored[1]
    assert [p.id for p in await store.load_visitor_passes(now=10.0)] == [3]  # 1 ended, 2 deleted
    await store.close()


async def test_escalation_rows_plan_claim_hold_release(make_store: StoreFactory) -> None:
    store, svc = await _opened(make_store)
    await svc.apply([tr(True, "e1/d1/a", 1.0), tr(True, "e1/d2/b", 1.0)])
    assert await store.unplanned_incidents() == [1, 2]
    steps = [EscalationStep(None, 1, "fire", 0, 0, 10.0), EscalationStep(None, 2, "fire", 0, 0, 5.0)]
    assert await store.plan_escalation(steps) == 2
    assert await store.plan_escalation([*steps, EscalationStep(None, 1, "fire", 1, 0, 20.0)]) == 1
    assert await store.unplanned_incidents() == []
    assert await store.next_due() == 5.0
    claimed = await store.claim_due_steps(10.0)
    assert [(s.incident_id, s.due_at) for s in claimed] == [(2, 5.0), (1, 10.0)]
    assert await store.claim_due_steps(10.0) == []
    await store.hold_steps([claimed[0].id or 0], until=15.0)
    assert await store.claim_due_steps(14.0) == []
    assert await store.next_due() == 15.0
    await store.finish_steps([claimed[1].id or 0])
    [again] = await store.claim_due_steps(15.0)
    assert again.id == claimed[0].id and again.hold_until == 15.0
    assert await store.release_firing() == 1
    await svc.acknowledge(1, "op")
    assert [s.incident_id for s in await store.claim_due_steps(30.0)] == [2]  # 1's step 1 is cancelled
    assert await store.next_due() is None
    await store.close()


async def test_an_escalation_plan_is_written_whole_or_not_at_all(make_store: StoreFactory) -> None:
    """A plan cut part-way (here a row the database refuses; in the kill -9 fault test, a kill) leaves no
    row behind: SQLite's autocommit connection once committed each row of the batch on its own, so an
    incident kept its first step only, counted as planned, and its second step was never sent."""
    store, svc = await _opened(make_store)
    await svc.apply([tr(True, "e1/d1/a", 1.0)])
    plan = [EscalationStep(None, 1, "fire", 0, 0, 1.0), EscalationStep(None, 1, "fire", 1, 0, 4.0)]
    with pytest.raises(StoreError):
        await store.plan_escalation([*plan, EscalationStep(None, 999, "fire", 0, 0, 1.0)])  # no incident 999
    assert await store.unplanned_incidents() == [1]  # still to plan: nothing of the batch stayed
    assert await store.plan_escalation(plan) == 2
    assert [(s.step, s.due_at) for s in await store.claim_due_steps(5.0)] == [(0, 1.0), (1, 4.0)]
    await store.close()


async def test_accounts_sessions_keys(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    for name in ["zhang", "Li", "alpha"]:
        await store.save_user(User(name, name.title(), "viewer", ("e1",), False, "h", 1.0, 1.0))
    await store.save_user(User("Li", "李", "admin", ("*",), True, "h2", 1.0, 2.0))
    assert [u.username for u in await store.list_users()] == ["Li", "alpha", "zhang"]  # byte order
    assert await store.get_user("Li") == User("Li", "李", "admin", ("*",), True, "h2", 1.0, 2.0)
    assert await store.get_user("nobody") is None
    session = Session(b"\x00\xffdigest", "Li", 100.0, 100.0, 200.0, None, "10.0.0.1")
    await store.add_session(session)
    await store.touch_session(session.digest, 150.0)
    assert await store.get_session(session.digest) == Session(b"\x00\xffdigest", "Li", 100.0, 150.0, 200.0,
                                                              None, "10.0.0.1")  # fmt: skip
    for key_id, created in [("k2", 5.0), ("k1", 5.0), ("k0", 9.0)]:
        await store.add_api_key(
            ApiKey(key_id, "n", "Li", "viewer", ("e1",), b"d", "admin", created, None, None, None)
        )
    assert [k.key_id for k in await store.list_api_keys()] == ["k1", "k2", "k0"]
    assert await store.revoke_api_key("k1", 160.0) and not await store.revoke_api_key("k1", 161.0)
    await store.touch_api_key("k2", 170.0)
    assert (await store.get_api_key("k2")).last_used_at == 170.0  # type: ignore[union-attr]
    assert await store.revoke_credentials("Li", 180.0) == 3  # the session and keys k2, k0
    assert (await store.get_session(session.digest)).revoked_at == 180.0  # type: ignore[union-attr]
    await store.save_kpi_buckets([("e1", "day", "2026-11-23", '{"a": 1}'), ("e1", "hour", "0", "{}")], [])
    await store.save_kpi_buckets([("e1", "day", "2026-11-23", '{"a": 2}')], [("e1", "hour", "0")])
    assert await store.load_kpi_buckets() == [("e1", "day", "2026-11-23", '{"a": 2}')]
    await store.close()


# -- PostgreSQL only ------------------------------------------------------------------------------


@pytest.fixture
def pg_dsn(postgres: PostgresProcess) -> str:
    return postgres.create_schema(f"t_{uuid.uuid4().hex[:12]}")


async def test_two_instances_claiming_at_once_never_get_the_same_step(pg_dsn: str) -> None:
    first, second = PostgresStore(pg_dsn, pool_max=4), PostgresStore(pg_dsn, pool_max=4)
    await asyncio.gather(first.open(), second.open())  # racing migrations: the advisory lock orders them
    service = IncidentService(first, ManualClock(1.0), grouping=NO_GROUPING)
    await service.start()
    await service.apply([ztr(True, f"e1/d{n}/r", 1.0, zone=f"z{n}") for n in range(40)])
    steps = [EscalationStep(None, i, "p", s, 0, float(s)) for i in range(1, 41) for s in range(10)]
    assert await first.plan_escalation(steps) == 400
    claims: dict[str, list[int]] = {"first": [], "second": []}

    async def claimer(name: str, store: PostgresStore) -> None:
        for _ in range(200):  # bounded; small batches so both claim in the same moments
            batch = await store.claim_due_steps(100.0, limit=7)
            claims[name] += [s.id or 0 for s in batch]
            if not batch:
                return

    await asyncio.wait_for(asyncio.gather(claimer("first", first), claimer("second", second)), 60)
    together = claims["first"] + claims["second"]
    assert len(together) == 400 and len(set(together)) == 400  # every step once, none twice
    assert claims["first"] and claims["second"]  # both really took part
    await first.close()
    await second.close()
    versions = PostgresStore(pg_dsn)
    await versions.open()
    assert versions.schema_version == len(MIGRATIONS)
    await versions.close()


@pytest.mark.timeout(90)
async def test_a_server_restart_mid_commit_is_a_store_error_then_nothing_is_lost(
    postgres: PostgresProcess, pg_dsn: str
) -> None:
    store = PostgresStore(pg_dsn, pool_min=2, pool_max=4, command_timeout=5.0)
    await store.open()
    service = IncidentService(store, ManualClock(1.0), grouping=NO_GROUPING)
    await service.start()
    errors: list[str] = []
    done: list[str] = []

    async def writer() -> None:
        for n in range(400):  # bounded: each key retried until it is stored, as the pipeline does
            key = f"e1/d{n}/r"
            for _ in range(100):
                try:
                    await service.apply([ztr(True, key, float(n), zone=f"z{n}")])
                    done.append(key)
                    break
                except StoreError as exc:
                    errors.append(str(exc))
                    await asyncio.sleep(0.1)

    task = asyncio.create_task(writer())
    for _ in range(200):
        if len(done) >= 30:
            break
        await asyncio.sleep(0.02)
    await asyncio.to_thread(postgres.stop, True)  # immediate: a crash, recovery at the next start
    await asyncio.sleep(0.5)
    await asyncio.to_thread(postgres.start)
    await asyncio.wait_for(task, 60)
    assert errors and all(e.startswith(f"postgres {dsn_label(pg_dsn)}") for e in errors)
    assert "postgres@" not in " ".join(errors)
    keys = [i.alarm_key for i in await store.list_incidents(IncidentQuery(limit=1000))]
    assert len(done) == 400 and sorted(keys) == sorted(done)  # all there, none twice
    await store.close()


def test_the_dsn_never_reaches_the_log_and_config_picks_the_engine(tmp_path: Path) -> None:
    assert (
        dsn_label("postgresql://gw:s3cret@db.example:6432/estate?sslmode=require") == "db.example:6432/estate"
    )
    assert dsn_label("host=db user=gw password=s3cret dbname=estate") == "db:5432/estate"
    text = _postgres_site(tmp_path, 'store: {engine: postgres, dsn: "${PG_DSN}", pool_max: 3}')
    config = parse_config(text, "site.yaml", {"PG_DSN": "postgresql://gw:s3cret@127.0.0.1/estate"})
    store = build_store(config.store, tmp_path)
    assert isinstance(store, PostgresStore) and store.pool_max == 3
    assert store_label(store) == "postgres 127.0.0.1:5432/estate"
    assert store_label(build_store(StoreConfig(), tmp_path)) == f"sqlite {tmp_path / 'var/estate-gateway.db'}"
    with pytest.raises(ValidationError, match=r"needs store\.dsn"):
        StoreConfig(engine="postgres")


def _postgres_site(tmp_path: Path, store: str, mqtt_port: int = 1883) -> str:
    """The stack's estate with another `store:` line."""
    text = site_yaml(mqtt_port, free_port(), tmp_path / "gw.db", f"eg-test-{uuid.uuid4().hex[:8]}")
    return text.replace(f'store: {{path: "{tmp_path / "gw.db"}"}}', store)


@pytest.mark.timeout(90)
async def test_an_estate_on_postgres_restores_its_fire_incident_after_a_restart(
    broker: MosquittoProcess, postgres: PostgresProcess, pg_dsn: str, tmp_path: Path
) -> None:
    text = _postgres_site(tmp_path, 'store: {engine: postgres, dsn: "${PG_DSN}"}', broker.port)
    config = parse_config(text, "site.yaml", {"PG_DSN": pg_dsn})
    assert config.store.engine == "postgres"
    async with SimulationHost(config, heartbeat_interval=1.0) as host:
        s = Stack(config, host)
        try:
            await s.start_gateway()
            host.models["fire-1"].values["L1-D003.fire"] = True  # type: ignore[attr-defined]
            await s.until(lambda: s.opened("fire_point_fire"), 5, "fire incident")
            [item] = s.opened("fire_point_fire")
            await asyncio.sleep(1.0)  # more polls of the same alarm
            await s.stop_gateway()
            s.feed.clear()
            app = await s.start_gateway()
            assert any(k.endswith("fire_point_fire/L1-D003.fire") for k in app.service.manager.active_keys())
            await asyncio.sleep(1.5)  # several polls of the alarm still on
            assert s.opened() == []  # restored, not opened again
            listed = (await s.api("GET", "/incidents")).json()
            assert [i["id"] for i in listed] == [item.change.incident.id]
            assert not (tmp_path / "gw.db").exists()  # nothing went to SQLite
        finally:
            await s.stop_gateway()
