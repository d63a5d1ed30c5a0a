"""Bearer-token authentication with roles and estate scope.

Tokens are kept only as SHA-256 digests and compared in constant time; the plain value never reaches a
log or a response. Scope is enforced in the queries (see app.py): an out-of-scope incident is a 404.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from starlette.requests import HTTPConnection

from gateway.config.schema import ApiTokenConfig

ROLE_RANK = {"viewer": 0, "operator": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    estates: frozenset[str] | None  # None: every estate

    def can_see(self, estate: str) -> bool:
        return self.estates is None or estate in self.estates

    def at_least(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def bearer(auth: TokenAuth) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller's Principal, or 401."""

    async def principal(request: Request) -> Principal:
        return await auth.authenticate(request)

    return principal


class TokenAuth:
    def __init__(self, tokens: list[ApiTokenConfig]) -> None:
        self._tokens = [
            (_digest(t.token), Principal(t.name, t.role, None if "*" in t.estates else frozenset(t.estates)))
            for t in tokens
        ]
        self.failures = 0

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        """The caller of a request or a WebSocket, or HTTPException 401."""
        header = conn.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            self.failures += 1
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "missing bearer token", {"WWW-Authenticate": "Bearer"}
            )
        digest = _digest(value.strip())
        found = None
        for known, principal in self._tokens:  # no early exit: same time for every token
            if hmac.compare_digest(known, digest):
                found = principal
        if found is None:
            self.failures += 1
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", {"WWW-Authenticate": "Bearer"})
        return found
