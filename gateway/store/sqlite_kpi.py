"""The SQLite side of the KPI accumulators (migration 13), mixed into SqliteStore.

One row per (estate, kind, key): kind `day` (key 2026-11-23, local date), `hour` (key: UTC hour start,
epoch s) or `state` (key `pending`: incidents whose response or repair is not yet counted). The data is
the engine's JSON; the store does not look inside.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from gateway.store.sqlite_tx import transaction

T = TypeVar("T")

__all__ = ["MIGRATION_KPI", "SqliteKpi"]

MIGRATION_KPI = """
    CREATE TABLE kpi_buckets (
        estate TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (estate, kind, key)
    )
"""


class SqliteKpi:
    """Mixin: needs the store's `_run` (one thread, one connection)."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def save_kpi_buckets(
        self, rows: list[tuple[str, str, str, str]], deleted: list[tuple[str, str, str]]
    ) -> None:
        """Upsert rows (estate, kind, key, data) and delete (estate, kind, key), in one transaction."""

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO kpi_buckets (estate, kind, key, data) VALUES (?,?,?,?) "
                    "ON CONFLICT (estate, kind, key) DO UPDATE SET data=excluded.data",
                    rows,
                )
                conn.executemany("DELETE FROM kpi_buckets WHERE estate=? AND kind=? AND key=?", deleted)

        await self._run(write)

    async def load_kpi_buckets(self) -> list[tuple[str, str, str, str]]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
            rows = conn.execute("SELECT estate, kind, key, data FROM kpi_buckets").fetchall()
            return [(str(e), str(k), str(key), str(d)) for e, k, key, d in rows]

        return await self._run(read)
