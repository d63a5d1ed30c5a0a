"""Escalation steps on PostgreSQL, mixed into PostgresStore: the same life cycle as on SQLite (pending →
firing → done | cancelled; held steps go back to pending with `hold_until`).

Several gateway instances may share one database. `claim_due_steps` locks the rows it hands out with
`FOR UPDATE SKIP LOCKED`, so two instances claiming at the same moment get disjoint sets and never send
the same step twice; a row another claimer holds is skipped rather than waited for. Under READ COMMITTED
a locked row whose state changed meanwhile is re-checked against `state = 'pending'` before it is taken.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from gateway.model import EscalationStep
from gateway.store.base import StepScope
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
      AND ($3::text[] IS NULL OR i.estate = ANY($3::text[]))
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

    async def unplanned_incidents(self, limit: int = 500, scope: StepScope | None = None) -> list[int]:
        """Open incidents with no escalation rows: new ones, or ones whose planning a crash cut off."""

        async def read(conn: Connection) -> list[int]:
            rows = await conn.fetch(
                "SELECT id FROM incidents i WHERE state='open' AND NOT EXISTS "
                "(SELECT 1 FROM escalation_steps s WHERE s.incident_id = i.id) "
                "AND ($2::text[] IS NULL OR i.estate = ANY($2::text[])) ORDER BY id LIMIT $1",
                limit,
                _estates(scope),
            )
            return [int(row[0]) for row in rows]

        return await self._read(read)

    async def claim_due_steps(
        self, now: float, limit: int = 500, scope: StepScope | None = None
    ) -> list[EscalationStep]:
        """Claim the steps due by `now` whose incident is still open and not shelved: pending → firing,
        row-locked, so each is handed out once across every instance. Steps of incidents acknowledged,
        resolved or closed meanwhile are cancelled. With a scope: only steps of its estates, claimed under
        its instance id."""

        async def claim(conn: Connection) -> list[EscalationStep]:
            await conn.execute(_CANCEL)
            rows = await conn.fetch(_DUE, now, limit, _estates(scope))
            if rows:
                await conn.execute(
                    "UPDATE escalation_steps SET state='firing', fired_at=$1, claimed_by=$3 "
                    "WHERE id = ANY($2::bigint[])",
                    now,
                    [row[0] for row in rows],
                    scope.claimer if scope else None,
                )
            return [EscalationStep(*row) for row in rows]

        return await self._write(claim)

    async def release_firing(self, scope: StepScope | None = None, live: Collection[str] = ()) -> int:
        """Firing steps back to pending (at-least-once for a crash mid-send). Without a scope, all of them
        (one instance, at its start). With a scope: steps of its estates whose claimer is nobody, the
        scope's own instance (a previous life of it) or an instance not in `live` (dead: its lease ran
        out); a step a live instance is sending right now is left alone, so it does not go twice."""

        async def write(conn: Connection) -> int:
            if scope is None:
                sql = "UPDATE escalation_steps SET state='pending' WHERE state='firing'"
                return rowcount(await conn.execute(sql))
            return rowcount(
                await conn.execute(
                    "UPDATE escalation_steps s SET state='pending', claimed_by=NULL FROM incidents i "
                    "WHERE i.id = s.incident_id AND s.state='firing' AND i.estate = ANY($1::text[]) "
                    "AND (s.claimed_by IS NULL OR s.claimed_by = $2 OR NOT s.claimed_by = ANY($3::text[]))",
                    sorted(scope.estates),
                    scope.claimer,
                    sorted(live),
                )
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

    async def next_due(self, scope: StepScope | None = None) -> float | None:
        async def read(conn: Connection) -> float | None:
            value = await conn.fetchval(
                "SELECT MIN(GREATEST(s.due_at, COALESCE(s.hold_until, 0))) FROM escalation_steps s "
                "JOIN incidents i ON i.id = s.incident_id "
                "WHERE s.state='pending' AND ($1::text[] IS NULL OR i.estate = ANY($1::text[]))",
                _estates(scope),
            )
            return None if value is None else float(value)

        return await self._read(read)


def _estates(scope: StepScope | None) -> list[str] | None:
    """The scope's estates as a query argument; None matches every estate."""
    return None if scope is None else sorted(scope.estates)
