"""What every store implementation offers. Tests written against this run on every engine."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.auth.store import AccountStore
from gateway.auth.two_person import CommandRequestStore
from gateway.model import (
    AuditEntry,
    EscalationStep,
    Incident,
    IncidentState,
    OutOfService,
    Priority,
    VisitorPass,
)
from gateway.store.duties import DutyStateRow, MaintenanceRecord, TourRow

if TYPE_CHECKING:
    from gateway.incidents.manager import IncidentChange


class StoreError(Exception):
    """The store failed (locked, disk full, connection lost); the caller retries or stops."""


@dataclass(frozen=True)
class IncidentQuery:
    estates: frozenset[str] | None = None  # None: every estate
    state: IncidentState | None = None
    priority: Priority | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class StepScope:
    """The escalation steps one instance of several handles: those of the estates it owns, claimed under
    its instance id (gateway/cluster). None where a method takes one: every step, one instance."""

    claimer: str
    estates: frozenset[str]


class Store(AccountStore, CommandRequestStore, Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def commit(
        self, changes: list[IncidentChange], windows: dict[str, dict[str, list[float]]] | None = None
    ) -> None:
        """Persist changes (and changed rule windows) in one transaction; new incidents get their ids."""

    async def load_windows(self) -> dict[str, dict[str, list[float]]]: ...

    async def save_kpi_buckets(
        self, rows: list[tuple[str, str, str, str]], deleted: list[tuple[str, str, str]]
    ) -> None:
        """KPI accumulators: upsert (estate, kind, key, JSON) rows, delete (estate, kind, key) ones."""

    async def load_kpi_buckets(self) -> list[tuple[str, str, str, str]]: ...

    # guard tours and maintenance duties (gateway/patrol, gateway/maintenance; sqlite_patrol.py)
    async def save_patrol_tours(self, rows: list[TourRow]) -> None:
        """Upsert tours (estate, route, due_at, status, JSON)."""

    async def load_patrol_tours(
        self, estates: frozenset[str] | None, since: float, until: float
    ) -> list[TourRow]:
        """Tours scheduled in [since, until) of these estates (None: every estate), by due time."""

    async def save_duty_states(self, rows: list[DutyStateRow]) -> None:
        """Upsert maintenance duty states (estate, duty, JSON)."""

    async def load_duty_states(self) -> list[DutyStateRow]: ...

    async def add_maintenance_record(self, record: MaintenanceRecord) -> MaintenanceRecord:
        """Store a completion; the returned copy has its id."""

    async def list_maintenance_records(
        self, estate: str, duty: str | None = None, limit: int = 100
    ) -> list[MaintenanceRecord]:
        """An estate's completions (of one duty), newest first."""

    async def record_audit(self, entry: AuditEntry) -> None: ...

    async def list_audit(self, estates: frozenset[str] | None, limit: int = 100) -> list[AuditEntry]: ...

    async def set_out_of_service(self, record: OutOfService | None, estate: str, device: str) -> None: ...

    async def load_out_of_service(self) -> list[OutOfService]: ...

    async def add_visitor_pass(self, record: VisitorPass) -> VisitorPass:
        """Store a pass; the returned copy has its id."""

    async def delete_visitor_pass(self, estate: str, pass_id: int) -> VisitorPass | None:
        """Delete a pass of that estate; None when there is none."""

    async def load_visitor_passes(self, now: float) -> list[VisitorPass]:
        """Passes that have not ended by `now`."""

    async def plan_escalation(self, steps: list[EscalationStep]) -> int: ...

    async def unplanned_incidents(self, limit: int = 500, scope: StepScope | None = None) -> list[int]: ...

    async def claim_due_steps(
        self, now: float, limit: int = 500, scope: StepScope | None = None
    ) -> list[EscalationStep]: ...

    async def finish_steps(self, step_ids: list[int]) -> None: ...

    async def release_firing(self, scope: StepScope | None = None, live: Collection[str] = ()) -> int:
        """Firing steps back to pending: all of them (no scope: one instance, at start), or those of the
        scope's estates claimed by nobody, by the scope's claimer or by an instance not in `live`."""

    async def hold_steps(self, step_ids: list[int], until: float) -> None: ...

    async def next_due(self, scope: StepScope | None = None) -> float | None:
        """When the next pending step may fire (its due time, or the end of its hold)."""

    async def load_unresolved(self) -> list[Incident]: ...

    async def get_incident(self, incident_id: int) -> Incident | None: ...

    async def list_incidents(self, query: IncidentQuery) -> list[Incident]: ...
