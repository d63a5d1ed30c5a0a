"""The PostgreSQL side of the KPI accumulators, mixed into PostgresStore (see gateway/store/sqlite_kpi.py
for what the rows mean; the store does not look inside the JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.postgres_pool import PgRunner

if TYPE_CHECKING:
    from gateway.store.postgres_schema import Connection

__all__ = ["PostgresKpi"]


class PostgresKpi(PgRunner):
    """Mixin: KPI buckets on the store's pool."""

    async def save_kpi_buckets(
        self, rows: list[tuple[str, str, str, str]], deleted: list[tuple[str, str, str]]
    ) -> None:
        """Upsert rows (estate, kind, key, data) and delete (estate, kind, key), in one transaction."""
        if not rows and not deleted:
            return

        async def write(conn: Connection) -> None:
            if rows:
                await conn.executemany(
                    "INSERT INTO kpi_buckets (estate, kind, key, data) VALUES ($1,$2,$3,$4) "
                    "ON CONFLICT (estate, kind, key) DO UPDATE SET data=excluded.data",
                    rows,
                )
            if deleted:
                await conn.executemany(
                    "DELETE FROM kpi_buckets WHERE estate=$1 AND kind=$2 AND key=$3", deleted
                )

        await self._write(write)

    async def load_kpi_buckets(self) -> list[tuple[str, str, str, str]]:
        async def read(conn: Connection) -> list[tuple[str, str, str, str]]:
            rows = await conn.fetch(
                "SELECT estate, kind, key, data FROM kpi_buckets ORDER BY estate, kind, key"
            )
            return [(str(e), str(k), str(key), str(d)) for e, k, key, d in rows]

        return await self._read(read)
