"""The core under its own failures: a store outage (commit and reload failing), a poisoned item.
Seams over the real store (SQLite and PostgreSQL) and engine, so the faults are exact."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.alerts import AlertEngine, DeviceInfo
from gateway.incidents import IncidentService
from gateway.ingest import IngestQueue
from gateway.model import Envelope, Item, ManualClock, Reading
from gateway.runtime.pipeline import Pipeline
from gateway.store import IncidentQuery, Store, StoreError
from tests.integration.postgres import StoreFactory
from tests.unit.test_engine import rule
from tests.unit.test_incidents import ztr


class FlakyStore:
    """A store that fails the next N commits and N reloads, as a locked or lost database would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.fail_commits = 0
        self.fail_loads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def commit(self, *args: Any, **kwargs: Any) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            raise StoreError("disk I/O error (injected)")
        await self.store.commit(*args, **kwargs)

    async def load_unresolved(self) -> Any:
        if self.fail_loads:
            self.fail_loads -= 1
            raise StoreError("disk I/O error (injected)")
        return await self.store.load_unresolved()


async def test_store_outage_neither_duplicates_incidents_nor_unmasks_maintenance(
    make_store: StoreFactory,
) -> None:
    store = FlakyStore(make_store())
    await store.open()
    svc = IncidentService(store, ManualClock())  # type: ignore[arg-type]
    await svc.start()
    await svc.take_out_of_service("e1", "pump", "sup1", "maintenance")
    await svc.apply([ztr(True, "e1/gen/oil", 1.0)])
    store.fail_commits, store.fail_loads = 1, 1  # the commit fails, and so does the first reload
    with pytest.raises(StoreError):
        await svc.apply([ztr(True, "e1/gate/forced", 2.0, zone="north")])
    with pytest.raises(StoreError):  # the retry: the view cannot be rebuilt yet, so nothing is decided
        await svc.apply([ztr(True, "e1/gate/forced", 2.0, zone="north")])
    # The store is back: the retry rebuilds the view first, and the open oil alarm is not opened twice.
    await svc.apply([ztr(True, "e1/gate/forced", 2.0, zone="north"), ztr(True, "e1/gen/oil", 3.0)])
    incidents = await svc.list(IncidentQuery())
    assert sorted(i.rule for i in incidents) == ["forced", "oil"]
    assert await svc.apply([ztr(True, "e1/pump/high", 4.0, zone="east")]) == []  # still out of service
    assert svc.manager.held == 1
    await store.close()


async def test_a_poisoned_item_costs_that_item_only(
    make_store: StoreFactory,
) -> None:
    class Buggy(AlertEngine):
        def process(self, item: Item) -> Any:
            if isinstance(item, Reading) and item.point == "poison":
                raise ZeroDivisionError("a bug in a rule")
            return super().process(item)

    clock = ManualClock()
    store = make_store()
    await store.open()
    service = IncidentService(store, clock)
    await service.start()
    engine = Buggy([rule(id="hi", kind="threshold", family="generator", point="p", op=">", limit=5)],
                   [DeviceInfo("e1", "d1", "generator")], clock)  # fmt: skip
    pipeline = Pipeline(IngestQueue(), engine, service)
    acked: list[str] = []
    batch = [
        Envelope(
            [Reading(0, "e1", "d1", "poison", 1), Reading(0, "e1", "d1", "p", 9)], lambda: acked.append("a")
        ),
        Envelope([Reading(0, "e1", "d1", "p", 9)], lambda: acked.append("b")),
    ]
    await pipeline.process(batch)
    assert pipeline.core_errors == 1 and acked == ["a", "b"]
    assert [i.rule for i in await service.list(IncidentQuery())] == ["hi"]
    await store.close()
