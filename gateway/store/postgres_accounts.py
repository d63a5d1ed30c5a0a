"""The PostgreSQL side of the accounts (users, sessions, API keys), mixed into PostgresStore; the same
behaviour as gateway/store/sqlite_accounts.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gateway.auth.records import ApiKey, Session, User
from gateway.store.postgres_pool import PgRunner, rowcount

if TYPE_CHECKING:
    from gateway.store.postgres_schema import Connection

__all__ = ["PostgresAccounts"]

_USER = "username, display_name, role, estates, disabled, password_hash, created_at, updated_at, job"
_SESSION = "digest, username, created_at, last_seen, expires_at, revoked_at, source"
_KEY = (
    "key_id, name, owner, role, estates, digest, created_by, created_at, expires_at, revoked_at, last_used_at"
)


def _user(row: Any) -> User:
    name, display, role, estates, disabled, pw, created, updated, job = row
    return User(name, display, role, tuple(json.loads(estates)), bool(disabled), pw, created, updated, job)


def _key(row: Any) -> ApiKey:
    key_id, name, owner, role, estates, dig, by, created, expires, revoked, used = row
    return ApiKey(key_id, name, owner, role, tuple(json.loads(estates)), bytes(dig), by, created, expires,
                  revoked, used)  # fmt: skip


class PostgresAccounts(PgRunner):
    """Mixin: users, sessions and API keys on the store's pool."""

    async def get_user(self, username: str) -> User | None:
        async def read(conn: Connection) -> User | None:
            row = await conn.fetchrow(f"SELECT {_USER} FROM users WHERE username=$1", username)
            return _user(row) if row else None

        return await self._read(read)

    async def list_users(self) -> list[User]:
        async def read(conn: Connection) -> list[User]:
            rows = await conn.fetch(f'SELECT {_USER} FROM users ORDER BY username COLLATE "C"')
            return [_user(r) for r in rows]

        return await self._read(read)

    async def save_user(self, user: User) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO users ({_USER}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) "
                "ON CONFLICT (username) DO UPDATE SET display_name=excluded.display_name, "
                "role=excluded.role, estates=excluded.estates, "
                "disabled=excluded.disabled, password_hash=excluded.password_hash, "
                "created_at=excluded.created_at, updated_at=excluded.updated_at, job=excluded.job",
                user.username, user.display_name, user.role, json.dumps(list(user.estates)),
                bool(user.disabled), user.password_hash, user.created_at, user.updated_at, user.job,
            )  # fmt: skip

        await self._write(write)

    async def add_session(self, session: Session) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO sessions ({_SESSION}) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                session.digest, session.username, session.created_at, session.last_seen,
                session.expires_at, session.revoked_at, session.source,
            )  # fmt: skip
            # Ended sessions are of no further use; drop them as new ones come.
            await conn.execute(
                "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1", session.created_at - 86400
            )

        await self._write(write)

    async def get_session(self, digest: bytes) -> Session | None:
        async def read(conn: Connection) -> Session | None:
            row = await conn.fetchrow(f"SELECT {_SESSION} FROM sessions WHERE digest=$1", digest)
            return Session(bytes(row[0]), *row[1:]) if row else None

        return await self._read(read)

    async def touch_session(self, digest: bytes, ts: float) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute("UPDATE sessions SET last_seen=$1 WHERE digest=$2", ts, digest)

        await self._write(write)

    async def revoke_session(self, digest: bytes, ts: float) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(
                "UPDATE sessions SET revoked_at=$1 WHERE digest=$2 AND revoked_at IS NULL", ts, digest
            )

        await self._write(write)

    async def add_api_key(self, key: ApiKey) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO api_keys ({_KEY}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
                key.key_id, key.name, key.owner, key.role, json.dumps(list(key.estates)), key.digest,
                key.created_by, key.created_at, key.expires_at, key.revoked_at, key.last_used_at,
            )  # fmt: skip

        await self._write(write)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        async def read(conn: Connection) -> ApiKey | None:
            row = await conn.fetchrow(f"SELECT {_KEY} FROM api_keys WHERE key_id=$1", key_id)
            return _key(row) if row else None

        return await self._read(read)

    async def list_api_keys(self) -> list[ApiKey]:
        async def read(conn: Connection) -> list[ApiKey]:
            rows = await conn.fetch(f'SELECT {_KEY} FROM api_keys ORDER BY created_at, key_id COLLATE "C"')
            return [_key(r) for r in rows]

        return await self._read(read)

    async def revoke_api_key(self, key_id: str, ts: float) -> bool:
        async def write(conn: Connection) -> bool:
            status = await conn.execute(
                "UPDATE api_keys SET revoked_at=$1 WHERE key_id=$2 AND revoked_at IS NULL", ts, key_id
            )
            return rowcount(status) > 0

        return await self._write(write)

    async def touch_api_key(self, key_id: str, ts: float) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute("UPDATE api_keys SET last_used_at=$1 WHERE key_id=$2", ts, key_id)

        await self._write(write)

    async def revoke_credentials(self, username: str, ts: float) -> int:
        async def write(conn: Connection) -> int:
            sessions = await conn.execute(
                "UPDATE sessions SET revoked_at=$1 WHERE username=$2 AND revoked_at IS NULL", ts, username
            )
            keys = await conn.execute(
                "UPDATE api_keys SET revoked_at=$1 WHERE owner=$2 AND revoked_at IS NULL", ts, username
            )
            return rowcount(sessions) + rowcount(keys)

        return await self._write(write)
