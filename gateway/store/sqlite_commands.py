"""The SQLite side of the two-person rule (pending dangerous commands) and of job roles (the users'
`job` column), mixed into SqliteStore. See gateway/auth/two_person.py for the states."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.auth.two_person import CommandRequest, State
from gateway.store.sqlite_tx import transaction

T = TypeVar("T")

__all__ = ["MIGRATION_COMMANDS", "SqliteCommands"]

MIGRATION_COMMANDS = """
    CREATE TABLE command_requests (
        id TEXT PRIMARY KEY, estate TEXT NOT NULL, device TEXT NOT NULL, command TEXT NOT NULL,
        reason TEXT NOT NULL, requested_by TEXT NOT NULL, confirm_by TEXT NOT NULL,
        created_at REAL NOT NULL, expires_at REAL NOT NULL, state TEXT NOT NULL,
        decided_by TEXT, decided_at REAL, outcome TEXT, detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX command_requests_estate ON command_requests(estate, created_at);
    ALTER TABLE users ADD COLUMN job TEXT
"""

COLUMNS = (
    "id, estate, device, command, reason, requested_by, confirm_by, created_at, expires_at, state, "
    "decided_by, decided_at, outcome, detail"
)


def command_request(row: Any) -> CommandRequest:
    (rid, estate, device, command, reason, by, confirm_by, created, expires, state, decided_by,
     decided_at, outcome, detail) = row  # fmt: skip
    return CommandRequest(str(rid), estate, device, command, reason, by, tuple(json.loads(confirm_by)),
                          created, expires, state, decided_by, decided_at, outcome, detail)  # fmt: skip


def command_values(r: CommandRequest) -> tuple[object, ...]:
    return (r.id, r.estate, r.device, r.command, r.reason, r.requested_by, json.dumps(list(r.confirm_by)),
            r.created_at, r.expires_at, r.state, r.decided_by, r.decided_at, r.outcome, r.detail)  # fmt: skip


class SqliteCommands:
    """Mixin: needs the store's `_run` (one thread, one connection)."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def add_command_request(self, request: CommandRequest) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    f"INSERT INTO command_requests ({COLUMNS}) VALUES ({','.join('?' * 14)})",
                    command_values(request),
                )

        await self._run(write)

    async def get_command_request(self, request_id: str) -> CommandRequest | None:
        def read(conn: sqlite3.Connection) -> CommandRequest | None:
            row = conn.execute(f"SELECT {COLUMNS} FROM command_requests WHERE id=?", (request_id,)).fetchone()
            return command_request(row) if row else None

        return await self._run(read)

    async def list_command_requests(
        self, estates: frozenset[str] | None, since: float, limit: int = 100
    ) -> list[CommandRequest]:
        def read(conn: sqlite3.Connection) -> list[CommandRequest]:
            sql = f"SELECT {COLUMNS} FROM command_requests WHERE created_at >= ?"
            args: list[object] = [since]
            if estates is not None:
                sql += f" AND estate IN ({','.join('?' * len(estates))})"
                args += sorted(estates)
            sql += " ORDER BY created_at DESC, id LIMIT ?"
            return [command_request(r) for r in conn.execute(sql, (*args, limit)).fetchall()]

        return await self._run(read)

    async def decide_command_request(
        self, request_id: str, state: State, by: str, at: float
    ) -> CommandRequest | None:
        def write(conn: sqlite3.Connection) -> CommandRequest | None:
            with transaction(conn):
                cur = conn.execute(
                    "UPDATE command_requests SET state=?, decided_by=?, decided_at=? "
                    "WHERE id=? AND state='pending' AND expires_at > ?",
                    (state, by, at, request_id, at),
                )
                if cur.rowcount != 1:
                    return None
                row = conn.execute(f"SELECT {COLUMNS} FROM command_requests WHERE id=?", (request_id,))
                return command_request(row.fetchone())

        return await self._run(write)

    async def finish_command_request(self, request_id: str, outcome: str, detail: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE command_requests SET outcome=?, detail=? WHERE id=?",
                    (outcome, detail, request_id),
                )

        await self._run(write)
