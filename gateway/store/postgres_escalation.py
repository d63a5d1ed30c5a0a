"""Escalation steps on PostgreSQL, mixed into PostgresStore: the same life cycle as on SQLite (pending →
firing → done | cancelled; held steps go back to pending with `hold_until`).

Several gateway instances may share one database. `claim_due_steps` locks the rows it hands out with
`FOR UPDATE SKIP LOCKED`, so two instances claiming at the same moment get disjoint sets and never send
the same step twice; a row another claimer holds is skipped rather than waited for. Under READ COMMITTED
a locked row whose state changed meanwhile is re-checked against `state = 'pending'` before it is taken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.model import EscalationStep
from gateway.store.postgres_pool import PgRunner, rowcount

if TYPE_CHECKING:
    from gateway.store.postgres_schema import Connection

__all__ = ["PostgresEscalation"]

_CANCEL = """
    UPDATE escalation_steps SET state = 'cancelled' WHERE id IN (
        SELECT s.id FROM escalation_steps s JOIN incidents i ON i.id = s.incident_id
        WHERE s.state IN ('pending', 'firing') AND i.state <> 'open'
        FOR UPDATE OF s SKIP LOCKED)
"""
_DUE = """
    SELECT s.id, s.incident_id, s.policy, s.step, s.repeat, s.due_at, s.hold_until
    FROM escalation_steps s JOIN incidents i ON i.id = s.incident_id
    WHERE s.state = 'pending' AND s.due_at <= $1
      AND (i.shelved_until IS NULL OR i.shelved_until <= $1)
      AND (s.hold_until IS NULL OR s.hold_until <= $1)
    ORDER BY s.due_at, s.id LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
"""


class PostgresEscalation(PgRunner):
    """Mixin: the escalation ladder rows on the store's pool."""

    async def plan_escalation(self, steps: list[EscalationStep]) -> int:
        """Insert steps; a step already planned (same incident, step, repeat) is left as it is."""
        if not steps:
            return 0

        async def write(conn: Connection) -> int:
            rows = await conn.fetch(
                "INSERT INTO escalation_steps (incident_id, policy, step, repeat, due_at, state) "
                "SELECT i, p, s, r, d, 'pending' FROM "
                "unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::float8[]) AS t(i, p, s, r, d) "
                "ON CONFLICT (incident_id, step, repeat) DO NOTHING RETURNING id",
                [s.incident_id for s in steps], [s.policy for s in steps], [s.step for s in steps],
                [s.repeat for s in steps], [float(s.due_at) for s in steps],
            )  # fmt: skip
            return len(rows)

        return await self._write(write)

    async def unplanned_incidents(self, limit: int = 500) -> list[int]:
        """Open incidents with no escalation rows: new ones, or ones whose planning a crash cut off."""

        async def read(conn: Connection) -> list[int]:
            rows = await conn.fetch(
                "SELECT id FROM incidents i WHERE state='open' AND NOT EXISTS "
                "(SELECT 1 FROM escalation_steps s WHERE s.incident_id = i.id) ORDER BY id LIMIT $1",
                limit,
            )
            return [int(row[0]) for row in rows]

        return await self._read(read)

    async def claim_due_steps(self, now: float, limit: int = 500) -> list[EscalationStep]:
        """Claim the steps due by `now` whose incident is still open and not shelved: pending → firing,
        row-locked, so each is handed out once across every instance. Steps of incidents acknowledged,
        resolved or closed meanwhile are cancelled."""

        async def claim(conn: Connection) -> list[EscalationStep]:
            await conn.execute(_CANCEL)
            rows = await conn.fetch(_DUE, now, limit)
            if rows:
                await conn.execute(
                    "UPDATE escalation_steps SET state='firing', fired_at=$1 WHERE id = ANY($2::bigint[])",
                    now,
                    [row[0] for row in rows],
                )
            return [EscalationStep(*row) for row in rows]

        return await self._write(claim)

    async def release_firing(self) -> int:
        """At start: steps a crash left `firing` go back to pending (at-least-once for a crash mid-send).
        With several instances on one database this also releases steps another live instance is sending
        at that moment; they may go out twice (never zero times)."""

        async def write(conn: Connection) -> int:
            return rowcount(
                await conn.execute("UPDATE escalation_steps SET state='pending' WHERE state='firing'")
            )

        return await self._write(write)

    async def finish_steps(self, step_ids: list[int]) -> None:
        if not step_ids:
            return

        async def write(conn: Connection) -> None:
            await conn.execute(
                "UPDATE escalation_steps SET state='done' WHERE id = ANY($1::bigint[])", list(step_ids)
            )

        await self._write(write)

    async def hold_steps(self, step_ids: list[int], until: float) -> None:
        """Give claimed steps back (pending), not to be claimed before `until`: grouped with the next."""
        if not step_ids:
            return

        async def write(conn: Connection) -> None:
            await conn.execute(
                "UPDATE escalation_steps SET state='pending', hold_until=$1 WHERE id = ANY($2::bigint[])",
                until,
                list(step_ids),
            )

        await self._write(write)

    async def next_due(self) -> float | None:
        async def read(conn: Connection) -> float | None:
            value = await conn.fetchval(
                "SELECT MIN(GREATEST(due_at, COALESCE(hold_until, 0))) FROM escalation_steps "
                "WHERE state='pending'"
            )
            return None if value is None else float(value)

        return await self._read(read)
