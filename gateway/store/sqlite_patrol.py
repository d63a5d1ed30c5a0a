"""The SQLite side of guard tours and maintenance duties (gateway/patrol, gateway/maintenance), mixed
into SqliteStore. Tours and duty states are JSON written by their owners (the store does not look
inside); completion records are plain columns (who, when, how, note)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from gateway.store.duties import DutyStateRow, MaintenanceRecord, TourRow
from gateway.store.sqlite_tx import transaction

T = TypeVar("T")

__all__ = ["MIGRATION_PATROL", "SqlitePatrol"]

MIGRATION_PATROL = """
    CREATE TABLE patrol_tours (
        estate TEXT NOT NULL, route TEXT NOT NULL, due_at REAL NOT NULL, status TEXT NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (estate, route, due_at)
    );
    CREATE INDEX patrol_tours_due ON patrol_tours(due_at);
    CREATE TABLE maintenance_duties (
        estate TEXT NOT NULL, duty TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (estate, duty)
    );
    CREATE TABLE maintenance_records (
        id INTEGER PRIMARY KEY AUTOINCREMENT, estate TEXT NOT NULL, duty TEXT NOT NULL,
        done_at REAL NOT NULL, done_by TEXT NOT NULL, how TEXT NOT NULL, note TEXT NOT NULL,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX maintenance_records_duty ON maintenance_records(estate, duty, done_at)
"""
_RECORD = "id, estate, duty, done_at, done_by, how, note, recorded_at"


class SqlitePatrol:
    """Mixin: needs the store's `_run` (one thread, one connection)."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def save_patrol_tours(self, rows: list[TourRow]) -> None:
        """Upsert tours (estate, route, due_at, status, JSON) in one transaction."""

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO patrol_tours (estate, route, due_at, status, data) VALUES (?,?,?,?,?) "
                    "ON CONFLICT (estate, route, due_at) DO UPDATE "
                    "SET status=excluded.status, data=excluded.data",
                    rows,
                )

        await self._run(write)

    async def load_patrol_tours(
        self, estates: frozenset[str] | None, since: float, until: float
    ) -> list[TourRow]:
        """Tours scheduled in [since, until), of these estates (None: all), by due time."""

        def read(conn: sqlite3.Connection) -> list[TourRow]:
            rows = conn.execute(
                "SELECT estate, route, due_at, status, data FROM patrol_tours "
                "WHERE due_at >= ? AND due_at < ? ORDER BY due_at, estate, route",
                (since, until),
            ).fetchall()
            return [
                (str(e), str(r), float(d), str(s), str(x))
                for e, r, d, s, x in rows
                if estates is None or e in estates
            ]

        return await self._run(read)

    async def save_duty_states(self, rows: list[DutyStateRow]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO maintenance_duties (estate, duty, data) VALUES (?,?,?) "
                    "ON CONFLICT (estate, duty) DO UPDATE SET data=excluded.data",
                    rows,
                )

        await self._run(write)

    async def load_duty_states(self) -> list[DutyStateRow]:
        def read(conn: sqlite3.Connection) -> list[DutyStateRow]:
            rows = conn.execute("SELECT estate, duty, data FROM maintenance_duties ORDER BY estate, duty")
            return [(str(e), str(d), str(x)) for e, d, x in rows.fetchall()]

        return await self._run(read)

    async def add_maintenance_record(self, record: MaintenanceRecord) -> MaintenanceRecord:
        """Store a completion; the returned copy has its id."""

        def write(conn: sqlite3.Connection) -> MaintenanceRecord:
            cur = conn.execute(
                f"INSERT INTO maintenance_records ({_RECORD.removeprefix('id, ')}) VALUES (?,?,?,?,?,?,?)",
                (record.estate, record.duty, record.done_at, record.by, record.how, record.note,
                 record.recorded_at),
            )  # fmt: skip
            return replace(record, id=cur.lastrowid)

        return await self._run(write)

    async def list_maintenance_records(
        self, estate: str, duty: str | None = None, limit: int = 100
    ) -> list[MaintenanceRecord]:
        """An estate's completions (of one duty), newest first."""

        def read(conn: sqlite3.Connection) -> list[MaintenanceRecord]:
            rows = conn.execute(
                f"SELECT {_RECORD} FROM maintenance_records WHERE estate=? AND (? IS NULL OR duty=?) "
                "ORDER BY done_at DESC, id DESC LIMIT ?",
                (estate, duty, duty, limit),
            ).fetchall()
            return [
                MaintenanceRecord(int(i), e, d, float(t), b, h, n, float(r))
                for i, e, d, t, b, h, n, r in rows
            ]

        return await self._run(read)
