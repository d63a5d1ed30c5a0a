"""The SQLite side of the accounts (users, sessions, API keys; migration 12), mixed into SqliteStore.
Kept apart so the incident store stays readable; it runs on the store's one thread like every call."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.auth.records import ApiKey, Session, User
from gateway.store.sqlite_tx import transaction

T = TypeVar("T")

__all__ = ["MIGRATION_ACCOUNTS", "SqliteAccounts"]

MIGRATION_ACCOUNTS = """
    CREATE TABLE users (
        username TEXT PRIMARY KEY, display_name TEXT NOT NULL, role TEXT NOT NULL, estates TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0, password_hash TEXT NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        digest BLOB PRIMARY KEY, username TEXT NOT NULL, created_at REAL NOT NULL, last_seen REAL NOT NULL,
        expires_at REAL NOT NULL, revoked_at REAL, source TEXT NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(username);
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL, role TEXT NOT NULL,
        estates TEXT NOT NULL, digest BLOB NOT NULL, created_by TEXT NOT NULL, created_at REAL NOT NULL,
        expires_at REAL, revoked_at REAL, last_used_at REAL
    );
    CREATE INDEX api_keys_owner ON api_keys(owner)
"""

_USER = "username, display_name, role, estates, disabled, password_hash, created_at, updated_at, job"
_SESSION = "digest, username, created_at, last_seen, expires_at, revoked_at, source"
_KEY = (
    "key_id, name, owner, role, estates, digest, created_by, created_at, expires_at, revoked_at, last_used_at"
)


def _user(row: tuple[Any, ...]) -> User:
    name, display, role, estates, disabled, pw, created, updated, job = row
    return User(name, display, role, tuple(json.loads(estates)), bool(disabled), pw, created, updated, job)


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, owner, role, estates, dig, by, created, expires, revoked, used = row
    return ApiKey(key_id, name, owner, role, tuple(json.loads(estates)), bytes(dig), by, created, expires,
                  revoked, used)  # fmt: skip


class SqliteAccounts:
    """Mixin: needs the store's `_run` (one thread, one connection)."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def get_user(self, username: str) -> User | None:
        def read(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(f"SELECT {_USER} FROM users WHERE username=?", (username,)).fetchone()
            return _user(row) if row else None

        return await self._run(read)

    async def list_users(self) -> list[User]:
        def read(conn: sqlite3.Connection) -> list[User]:
            return [_user(r) for r in conn.execute(f"SELECT {_USER} FROM users ORDER BY username").fetchall()]

        return await self._run(read)

    async def save_user(self, user: User) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    f"INSERT OR REPLACE INTO users ({_USER}) VALUES (?,?,?,?,?,?,?,?,?)",
                    (user.username, user.display_name, user.role, json.dumps(list(user.estates)),
                     int(user.disabled), user.password_hash, user.created_at, user.updated_at, user.job),
                )  # fmt: skip

        await self._run(write)

    async def add_session(self, session: Session) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    f"INSERT INTO sessions ({_SESSION}) VALUES (?,?,?,?,?,?,?)",
                    (session.digest, session.username, session.created_at, session.last_seen,
                     session.expires_at, session.revoked_at, session.source),
                )  # fmt: skip
                # Ended sessions are of no further use; drop them as new ones come.
                conn.execute(
                    "DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?",
                    (session.created_at - 86400, session.created_at - 86400),
                )

        await self._run(write)

    async def get_session(self, digest: bytes) -> Session | None:
        def read(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute(f"SELECT {_SESSION} FROM sessions WHERE digest=?", (digest,)).fetchone()
            return Session(bytes(row[0]), *row[1:]) if row else None

        return await self._run(read)

    async def touch_session(self, digest: bytes, ts: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("UPDATE sessions SET last_seen=? WHERE digest=?", (ts, digest))

        await self._run(write)

    async def revoke_session(self, digest: bytes, ts: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE sessions SET revoked_at=? WHERE digest=? AND revoked_at IS NULL", (ts, digest)
                )

        await self._run(write)

    async def add_api_key(self, key: ApiKey) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    f"INSERT INTO api_keys ({_KEY}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (key.key_id, key.name, key.owner, key.role, json.dumps(list(key.estates)), key.digest,
                     key.created_by, key.created_at, key.expires_at, key.revoked_at, key.last_used_at),
                )  # fmt: skip

        await self._run(write)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        def read(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(f"SELECT {_KEY} FROM api_keys WHERE key_id=?", (key_id,)).fetchone()
            return _key(row) if row else None

        return await self._run(read)

    async def list_api_keys(self) -> list[ApiKey]:
        def read(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(f"SELECT {_KEY} FROM api_keys ORDER BY created_at, key_id").fetchall()
            return [_key(r) for r in rows]

        return await self._run(read)

    async def revoke_api_key(self, key_id: str, ts: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                cur = conn.execute(
                    "UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL", (ts, key_id)
                )
            return cur.rowcount > 0

        return await self._run(write)

    async def touch_api_key(self, key_id: str, ts: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("UPDATE api_keys SET last_used_at=? WHERE key_id=?", (ts, key_id))

        await self._run(write)

    async def revoke_credentials(self, username: str, ts: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                sessions = conn.execute(
                    "UPDATE sessions SET revoked_at=? WHERE username=? AND revoked_at IS NULL", (ts, username)
                ).rowcount
                keys = conn.execute(
                    "UPDATE api_keys SET revoked_at=? WHERE owner=? AND revoked_at IS NULL", (ts, username)
                ).rowcount
            return sessions + keys

        return await self._run(write)
