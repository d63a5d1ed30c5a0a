"""The connection side of the PostgreSQL store: an asyncpg pool, one transaction per call, and the one
place where asyncpg's and the network's exceptions become `StoreError` (so the pipeline retries after a
lost connection or a server restart, exactly as after a locked SQLite file).

Writes of one instance go through one asyncio lock, in call order, as they do on SQLite's one thread:
callers may rely on "what I wrote before is written before". Reads run in parallel on the pool, each in
a read-only REPEATABLE READ transaction so an incident and its timeline come from the same snapshot.
Instances (processes) coordinate through the database itself: row locks, never this lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg

from gateway.store.base import StoreError
from gateway.store.postgres_schema import migrate

if TYPE_CHECKING:
    from gateway.store.postgres_schema import Connection

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]

__all__ = ["PgRunner", "dsn_label", "rowcount"]

T = TypeVar("T")

# What a lost connection, a restarting server or a failed statement raise through asyncpg.
_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def dsn_label(dsn: str) -> str:
    """`host:port/db` of a DSN, for logs and errors: never the user or the password."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = parts.hostname or query.get("host", ["localhost"])[0]
        port = parts.port or int(query.get("port", ["5432"])[0])
        db = parts.path.lstrip("/") or query.get("dbname", ["?"])[0]
        return f"{host}:{port}/{db}"
    pairs = dict(item.split("=", 1) for item in dsn.split() if "=" in item)
    return f"{pairs.get('host', 'localhost')}:{pairs.get('port', '5432')}/{pairs.get('dbname', '?')}"


def rowcount(status: str) -> int:
    """The row count of a command status such as `UPDATE 3` or `INSERT 0 1`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """On release to the pool. The store sets no session state (no LISTEN, no session advisory locks, no
    SET): only a transaction a cancelled reader left open needs ending. Saves asyncpg's default reset
    query, a round trip per call."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PgRunner:
    """The pool and the transaction helpers the store's parts share."""

    def __init__(
        self, dsn: str, pool_min: int = 1, pool_max: int = 10, command_timeout: float = 10.0
    ) -> None:
        self.dsn = dsn
        self.label = dsn_label(dsn)
        self.pool_min, self.pool_max = pool_min, pool_max
        self.command_timeout = command_timeout
        self._pool: Pool | None = None
        self._write_lock = asyncio.Lock()
        self.schema_version = 0

    def _error(self, exc: BaseException) -> StoreError:
        # asyncpg's messages carry no credentials; the DSN itself never goes into an error or a log.
        return StoreError(f"postgres {self.label}: {type(exc).__name__}: {exc}")

    async def open(self) -> None:
        """Create the pool and bring the schema up to date; StoreError when the server is not there."""
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.pool_min,
                max_size=self.pool_max,
                command_timeout=self.command_timeout,
                timeout=self.command_timeout,  # connecting
                reset=_reset,
            )
            async with self._pool.acquire(timeout=self.command_timeout) as conn:
                self.schema_version = await migrate(conn)
        except _FAILURES as exc:
            await self.close()
            raise self._error(exc) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.command_timeout)
        except (*_FAILURES, asyncio.CancelledError):
            pool.terminate()

    def _live_pool(self) -> Pool:
        if self._pool is None:
            raise StoreError(f"postgres {self.label}: store is not open")
        return self._pool

    async def _write(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn` in one read-write transaction, after this instance's earlier writes. A caller that is
        cancelled does not cancel the write: it completes, as a write handed to SQLite's thread does."""
        return await asyncio.shield(self._write_now(fn))

    async def _write_now(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        async with self._write_lock:
            try:
                async with (
                    self._live_pool().acquire(timeout=self.command_timeout) as conn,
                    conn.transaction(),
                ):
                    return await fn(conn)
            except _FAILURES as exc:
                raise self._error(exc) from exc

    async def _read(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn` in one read-only snapshot."""
        try:
            pool = self._live_pool()
            async with (
                pool.acquire(timeout=self.command_timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await fn(conn)
        except _FAILURES as exc:
            raise self._error(exc) from exc
