"""Estate leases and live instances on PostgreSQL, mixed into PostgresStore (tables in
postgres_cluster_schema.py; the policy that uses them is gateway/cluster/ownership.py).

Every statement reads the time from the database server (`clock_timestamp()`), never from the caller,
so two instances whose clocks disagree still agree on whether a lease has run out. Claims lock candidate
rows with `FOR UPDATE SKIP LOCKED`: two instances claiming at once get disjoint estates.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.store.postgres_pool import PgRunner

if TYPE_CHECKING:
    from gateway.store.postgres_schema import Connection

__all__ = ["EstateLease", "InstanceRecord", "PostgresCluster"]

_NOW = "extract(epoch FROM clock_timestamp())::float8"


@dataclass(frozen=True)
class EstateLease:
    estate: str
    owner: str | None
    epoch: int
    expires_at: float  # database time, epoch seconds
    acquired_at: float | None


@dataclass(frozen=True)
class InstanceRecord:
    instance: str
    api_url: str
    started_at: float
    seen_at: float
    live: bool  # seen within the lease period, by the database's clock


class PostgresCluster(PgRunner):
    """Mixin: the lease rows on the store's pool."""

    async def heartbeat(
        self, instance: str, api_url: str, ttl: float, starting: bool = False
    ) -> tuple[float, list[InstanceRecord]]:
        """Say this instance is alive; the database's time and every instance it knows (live or not)."""

        async def write(conn: Connection) -> tuple[float, list[InstanceRecord]]:
            now = float(await conn.fetchval(f"SELECT {_NOW}"))
            await conn.execute(
                "INSERT INTO gateway_instances (instance, api_url, started_at, seen_at) VALUES ($1,$2,$3,$3) "
                "ON CONFLICT (instance) DO UPDATE SET api_url = excluded.api_url, "
                "seen_at = excluded.seen_at, "
                "started_at = CASE WHEN $4 THEN excluded.started_at ELSE gateway_instances.started_at END",
                instance, api_url, now, starting,
            )  # fmt: skip
            rows = await conn.fetch(
                "SELECT instance, api_url, started_at, seen_at FROM gateway_instances ORDER BY instance"
            )
            return now, [
                InstanceRecord(r[0], r[1], float(r[2]), float(r[3]), float(r[3]) > now - ttl) for r in rows
            ]

        return await self._write(write)

    async def claim_estates(
        self, instance: str, candidates: Collection[str], limit: int, ttl: float
    ) -> dict[str, int]:
        """Take up to `limit` of the candidates that nobody holds, whose lease ran out, or that this
        instance id still holds from before a restart (first): estate → epoch."""
        if limit <= 0 or not candidates:
            return {}

        async def write(conn: Connection) -> dict[str, int]:
            wanted = sorted(candidates)
            await conn.execute(
                "INSERT INTO estate_leases (estate) SELECT unnest($1::text[]) "
                "ON CONFLICT (estate) DO NOTHING",
                wanted,
            )
            rows = await conn.fetch(
                f"UPDATE estate_leases l SET owner = $1, epoch = l.epoch + 1, expires_at = {_NOW} + $4, "
                f"acquired_at = {_NOW} WHERE l.estate IN ("
                "  SELECT estate FROM estate_leases WHERE estate = ANY($2::text[]) "
                f"  AND (owner IS NULL OR expires_at < {_NOW} OR owner = $1) "
                "  ORDER BY (owner IS DISTINCT FROM $1), estate LIMIT $3 "
                "  FOR UPDATE SKIP LOCKED) RETURNING l.estate, l.epoch",
                instance, wanted, limit, ttl,
            )  # fmt: skip
            return {str(r[0]): int(r[1]) for r in rows}

        return await self._write(write)

    async def renew_estates(self, instance: str, estates: Collection[str], ttl: float) -> set[str]:
        """Extend this instance's leases; the estates it still holds (a lease taken over is not renewed)."""
        if not estates:
            return set()

        async def write(conn: Connection) -> set[str]:
            rows = await conn.fetch(
                f"UPDATE estate_leases SET expires_at = {_NOW} + $3 "
                "WHERE owner = $1 AND estate = ANY($2::text[]) RETURNING estate",
                instance, sorted(estates), ttl,
            )  # fmt: skip
            return {str(r[0]) for r in rows}

        return await self._write(write)

    async def release_estates(self, instance: str, estates: Collection[str]) -> None:
        """Give leases up at once (shutdown, rebalancing): another instance may take them now."""
        if not estates:
            return

        async def write(conn: Connection) -> None:
            await conn.execute(
                "UPDATE estate_leases SET owner = NULL, expires_at = 0 "
                "WHERE owner = $1 AND estate = ANY($2::text[])",
                instance, sorted(estates),
            )  # fmt: skip

        await self._write(write)

    async def estate_leases(self) -> list[EstateLease]:
        async def read(conn: Connection) -> list[EstateLease]:
            rows = await conn.fetch(
                "SELECT estate, owner, epoch, expires_at, acquired_at FROM estate_leases ORDER BY estate"
            )
            return [
                EstateLease(r[0], r[1], int(r[2]), float(r[3]), None if r[4] is None else float(r[4]))
                for r in rows
            ]

        return await self._read(read)

    async def database_time(self) -> float:
        async def read(conn: Connection) -> float:
            return float(await conn.fetchval(f"SELECT {_NOW}"))

        return await self._read(read)
