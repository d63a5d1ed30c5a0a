"""What the accounts need from the store. `gateway.store.Store` includes this protocol."""

from __future__ import annotations

from typing import Protocol

from gateway.auth.records import ApiKey, Session, User

__all__ = ["AccountStore"]


class AccountStore(Protocol):
    async def get_user(self, username: str) -> User | None: ...

    async def list_users(self) -> list[User]: ...

    async def save_user(self, user: User) -> None:
        """Insert or replace the user of that username."""

    async def add_session(self, session: Session) -> None: ...

    async def get_session(self, digest: bytes) -> Session | None: ...

    async def touch_session(self, digest: bytes, ts: float) -> None: ...

    async def revoke_session(self, digest: bytes, ts: float) -> None: ...

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def get_api_key(self, key_id: str) -> ApiKey | None: ...

    async def list_api_keys(self) -> list[ApiKey]: ...

    async def revoke_api_key(self, key_id: str, ts: float) -> bool:
        """False when there is no such key or it was revoked already."""

    async def touch_api_key(self, key_id: str, ts: float) -> None: ...

    async def revoke_credentials(self, username: str, ts: float) -> int:
        """Revoke every live session and API key of a user; how many."""
