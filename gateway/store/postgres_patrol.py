"""The PostgreSQL side of guard tours and maintenance duties, mixed into PostgresStore (see
gateway/store/sqlite_patrol.py for what the rows mean). DDL: postgres_patrol_schema.py."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.store.duties import DutyStateRow, MaintenanceRecord, TourRow
from gateway.store.postgres_pool import PgRunner

if TYPE_CHECKING:
    from gateway.store.postgres_schema import Connection

__all__ = ["PostgresPatrol"]

_RECORD = "id, estate, duty, done_at, done_by, how, note, recorded_at"


class PostgresPatrol(PgRunner):
    """Mixin: tours, duty states and completion records on the store's pool."""

    async def save_patrol_tours(self, rows: list[TourRow]) -> None:
        if not rows:
            return

        async def write(conn: Connection) -> None:
            await conn.executemany(
                "INSERT INTO patrol_tours (estate, route, due_at, status, data) VALUES ($1,$2,$3,$4,$5) "
                "ON CONFLICT (estate, route, due_at) DO UPDATE "
                "SET status=excluded.status, data=excluded.data",
                rows,
            )

        await self._write(write)

    async def load_patrol_tours(
        self, estates: frozenset[str] | None, since: float, until: float
    ) -> list[TourRow]:
        async def read(conn: Connection) -> list[TourRow]:
            rows = await conn.fetch(
                "SELECT estate, route, due_at, status, data FROM patrol_tours "
                "WHERE due_at >= $1 AND due_at < $2 AND ($3::text[] IS NULL OR estate = ANY($3::text[])) "
                "ORDER BY due_at, estate, route",
                since, until, None if estates is None else sorted(estates),
            )  # fmt: skip
            return [(str(e), str(r), float(d), str(s), str(x)) for e, r, d, s, x in rows]

        return await self._read(read)

    async def save_duty_states(self, rows: list[DutyStateRow]) -> None:
        if not rows:
            return

        async def write(conn: Connection) -> None:
            await conn.executemany(
                "INSERT INTO maintenance_duties (estate, duty, data) VALUES ($1,$2,$3) "
                "ON CONFLICT (estate, duty) DO UPDATE SET data=excluded.data",
                rows,
            )

        await self._write(write)

    async def load_duty_states(self) -> list[DutyStateRow]:
        async def read(conn: Connection) -> list[DutyStateRow]:
            rows = await conn.fetch("SELECT estate, duty, data FROM maintenance_duties ORDER BY estate, duty")
            return [(str(e), str(d), str(x)) for e, d, x in rows]

        return await self._read(read)

    async def add_maintenance_record(self, record: MaintenanceRecord) -> MaintenanceRecord:
        async def write(conn: Connection) -> MaintenanceRecord:
            new_id = await conn.fetchval(
                f"INSERT INTO maintenance_records ({_RECORD.removeprefix('id, ')}) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id",
                record.estate, record.duty, record.done_at, record.by, record.how, record.note,
                record.recorded_at,
            )  # fmt: skip
            return replace(record, id=int(new_id))

        return await self._write(write)

    async def list_maintenance_records(
        self, estate: str, duty: str | None = None, limit: int = 100
    ) -> list[MaintenanceRecord]:
        async def read(conn: Connection) -> list[MaintenanceRecord]:
            rows = await conn.fetch(
                f"SELECT {_RECORD} FROM maintenance_records "
                "WHERE estate=$1 AND ($2::text IS NULL OR duty=$2) "
                "ORDER BY done_at DESC, id DESC LIMIT $3",
                estate, duty, limit,
            )  # fmt: skip
            return [
                MaintenanceRecord(int(i), str(e), str(d), float(t), str(b), h, str(n), float(r))
                for i, e, d, t, b, h, n, r in rows
            ]

        return await self._read(read)
