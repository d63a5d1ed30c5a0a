"""The PostgreSQL side of the two-person rule (pending dangerous commands), mixed into PostgresStore.
The confirm is one conditional UPDATE: of two instances confirming at once, one gets the row back and
executes the command; the other gets nothing (see gateway/auth/two_person.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.auth.two_person import CommandRequest, State
from gateway.store.postgres_pool import PgRunner
from gateway.store.sqlite_commands import COLUMNS, command_request, command_values

if TYPE_CHECKING:
    from gateway.store.postgres_schema import Connection

__all__ = ["PostgresCommands"]


_PLACES = ",".join(f"${i}" for i in range(1, 15))


class PostgresCommands(PgRunner):
    """Mixin: command requests on the store's pool."""

    async def add_command_request(self, request: CommandRequest) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO command_requests ({COLUMNS}) VALUES ({_PLACES})", *command_values(request)
            )

        await self._write(write)

    async def get_command_request(self, request_id: str) -> CommandRequest | None:
        async def read(conn: Connection) -> CommandRequest | None:
            row = await conn.fetchrow(f"SELECT {COLUMNS} FROM command_requests WHERE id=$1", request_id)
            return command_request(tuple(row)) if row else None

        return await self._read(read)

    async def list_command_requests(
        self, estates: frozenset[str] | None, since: float, limit: int = 100
    ) -> list[CommandRequest]:
        async def read(conn: Connection) -> list[CommandRequest]:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM command_requests WHERE created_at >= $1 "
                "AND ($2::text[] IS NULL OR estate = ANY($2::text[])) "
                "ORDER BY created_at DESC, id LIMIT $3",
                since, None if estates is None else sorted(estates), limit,
            )  # fmt: skip
            return [command_request(tuple(r)) for r in rows]

        return await self._read(read)

    async def decide_command_request(
        self, request_id: str, state: State, by: str, at: float
    ) -> CommandRequest | None:
        async def write(conn: Connection) -> CommandRequest | None:
            row = await conn.fetchrow(
                "UPDATE command_requests SET state=$1, decided_by=$2, decided_at=$3 "
                f"WHERE id=$4 AND state='pending' AND expires_at > $3 RETURNING {COLUMNS}",
                state, by, at, request_id,
            )  # fmt: skip
            return command_request(tuple(row)) if row else None

        return await self._write(write)

    async def finish_command_request(self, request_id: str, outcome: str, detail: str) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(
                "UPDATE command_requests SET outcome=$1, detail=$2 WHERE id=$3", outcome, detail, request_id
            )

        await self._write(write)
