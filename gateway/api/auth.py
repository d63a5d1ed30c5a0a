"""Who is calling, and what each route lets them do.

Credentials, in the order they are tried:
- `Authorization: Bearer <token>`: a config token (`api.tokens`, kept as SHA-256 digests, compared in
  constant time) or an API key (`egk_<id>_<secret>`, looked up by id, digest compared);
- the `eg_session` cookie of a console login. Unsafe methods (POST/PUT/PATCH/DELETE) on a cookie session
  also need `X-CSRF-Token` equal to the `eg_csrf` cookie and to the session's own CSRF token (double
  submit, bound to the session). Bearer calls carry no ambient credential and are exempt.

Route policy: every route declares its least role with `dependencies=[require(auth, "operator")]`, or
`dependencies=[public()]` for the few that need no login (health, login, signed ack links). The
regulator (gateway/auth/tenancy.py) is no rank: it passes only routes that admit it by name
(`require(auth, "viewer", regulator=True)`: KPIs and reports), and sees every estate there.
`route_policy(route)` reads it back (the role × estate test matrix is generated from it). A caller below
the role gets 403 whatever the target; a target outside the caller's estates is a 404 (the routes
enforce scope in their queries), so nobody learns what exists elsewhere.
"""

import hashlib
import hmac
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, status
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from gateway.auth import KEY_PREFIX, Accounts, AuthSettings, Passwords, csrf_for
from gateway.auth.records import REGULATOR
from gateway.auth.store import AccountStore
from gateway.auth.tenancy import Tenancy
from gateway.config.schema import ApiConfig, ApiTokenConfig
from gateway.model import Clock

__all__ = [
    "AUDIT_NOTE_KEY",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "EVERY_ESTATE_ATTR",
    "POLICY_ATTR",
    "PRINCIPAL_KEY",
    "REGULATOR_ATTR",
    "ROLE_RANK",
    "SESSION_COOKIE",
    "UNSAFE_METHODS",
    "Principal",
    "TokenAuth",
    "bearer",
    "client_address",
    "declare",
    "public",
    "require",
    "route_policy",
    "routes_of",
]

ROLE_RANK = {"viewer": 0, "operator": 1, "supervisor": 2, "admin": 3}
SESSION_COOKIE = "eg_session"
CSRF_COOKIE = "eg_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDIT_NOTE_KEY = "eg.audit"  # what a request adds to its audit entry (gateway/api/audit.annotate)
PRINCIPAL_KEY = "eg.principal"  # where authenticate() leaves the caller in the ASGI scope (for the audit)
POLICY_ATTR = "__eg_min_role__"
EVERY_ESTATE_ATTR = "__eg_every_estate__"  # the route spans all estates: scoped callers get 403
REGULATOR_ATTR = "__eg_regulator__"  # the route admits the regulator (read-only KPIs and reports)
PUBLIC = "public"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    estates: frozenset[str] | None  # None: every estate
    kind: str = "token"  # token (config) | key (API key) | session (console login)
    display_name: str = ""
    csrf: str = field(default="", repr=False)  # the session's CSRF token (sessions only)
    account: str | None = None  # the user behind a session or an API key; None for config tokens
    job: str | None = None  # the user's job (gateway/auth/jobs.py): rights beyond the rank

    def can_see(self, estate: str) -> bool:
        return self.estates is None or estate in self.estates

    def at_least(self, role: str) -> bool:
        """Ranked check; never true for the regulator, which is no rank."""
        return self.role in ROLE_RANK and ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def regulator(self) -> bool:
        return self.role == REGULATOR

    @property
    def person(self) -> str:
        """Who acts, for the two-person rule: a user's session and its API keys are one person."""
        return self.account or self.name

    def covers(self, estates: frozenset[str] | None) -> bool:
        """Whether every estate of `estates` (None: all) is within this caller's scope."""
        return self.estates is None or (estates is not None and estates <= self.estates)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, {"WWW-Authenticate": "Bearer"})


def client_address(conn: HTTPConnection, trusted: frozenset[str]) -> str:
    """The caller's address: the peer, or (when the peer is a trusted proxy) the last address in
    X-Forwarded-For that is not itself a trusted proxy."""
    peer = conn.client.host if conn.client else ""
    if peer not in trusted:
        return peer
    forwarded = [a.strip() for a in conn.headers.get("x-forwarded-for", "").split(",") if a.strip()]
    for address in reversed(forwarded):
        if address not in trusted:
            return address
    return peer


class TokenAuth:
    """Authenticates requests and WebSockets. Without `accounts`, only config tokens are known."""

    def __init__(
        self, tokens: list[ApiTokenConfig], accounts: Accounts | None = None, tenancy: Tenancy | None = None
    ) -> None:
        self.tenancy = tenancy or (accounts.tenancy if accounts else Tenancy())
        self._tokens = [
            (_digest(t.token), Principal(t.name, t.role, None if "*" in t.estates else frozenset(t.estates)))
            for t in tokens
        ]
        self.accounts = accounts
        self.settings = accounts.settings if accounts else AuthSettings()
        self.failures = 0

        async def dependency(conn: HTTPConnection) -> Principal:
            return await self.authenticate(conn)

        # One object for every route: FastAPI caches a dependency per request by its callable, so a
        # route's `require(...)` and its `user` parameter authenticate once between them.
        self.dependency: Callable[[HTTPConnection], Coroutine[Any, Any, Principal]] = dependency

    @classmethod
    def from_config(
        cls,
        api: ApiConfig,
        store: AccountStore,
        clock: Clock | None = None,
        passwords: Passwords | None = None,
        tenancy: Tenancy | None = None,
    ) -> "TokenAuth":
        """Config tokens plus the users, sessions and keys of the store, with `api.auth` settings;
        `tenancy` expands `company:<id>` scopes."""
        accounts = Accounts(store, AuthSettings.from_config(api.auth), clock, passwords, tenancy)
        return cls(api.tokens, accounts, tenancy)

    def scope_of(self, estates: Iterable[str]) -> frozenset[str] | None:
        """The estates a scope list (ids, '*', company:<id>) grants now."""
        return self.tenancy.scope(estates)

    def address(self, conn: HTTPConnection) -> str:
        return client_address(conn, self.settings.trusted_proxies)

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        """The caller of a request or a WebSocket, or HTTPException 401 (403: CSRF check failed)."""
        try:
            principal = await self._principal(conn)
        except HTTPException:
            self.failures += 1
            raise
        conn.scope[PRINCIPAL_KEY] = principal
        return principal

    async def _principal(self, conn: HTTPConnection) -> Principal:
        header = conn.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            value = value.strip()
            if scheme.lower() != "bearer" or not value:
                raise _unauthorized("missing bearer token")
            found = self._config_token(value)
            if found is None and self.accounts is not None and value.startswith(KEY_PREFIX):
                found = await self._api_key(self.accounts, value)
            if found is None:
                raise _unauthorized("invalid token")
            return found
        cookie = conn.cookies.get(SESSION_COOKIE)
        if not cookie or self.accounts is None:
            raise _unauthorized("missing bearer token")
        user = await self.accounts.session_user(cookie)
        if user is None:
            raise _unauthorized("session expired or revoked; log in again")
        csrf = csrf_for(cookie)
        if conn.scope["type"] == "http" and conn.scope["method"] in UNSAFE_METHODS:
            sent = conn.headers.get(CSRF_HEADER, "")
            pair = conn.cookies.get(CSRF_COOKIE, "")
            if not (hmac.compare_digest(sent, pair) and hmac.compare_digest(sent, csrf)):
                # The audit names whose session a forged request rode on (see gateway/api/audit.py).
                note = conn.scope.setdefault(AUDIT_NOTE_KEY, {})
                note.update(actor=user.username, reason="csrf")
                if user.scope is not None and len(user.scope) == 1:
                    [note["estate"]] = user.scope
                raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF token missing or wrong")
        scope = None if user.role == REGULATOR else self.scope_of(user.estates)
        return Principal(
            user.username, user.role, scope, "session", user.display_name, csrf, user.username, user.job
        )

    def _config_token(self, value: str) -> Principal | None:
        digest = _digest(value)
        found = None
        for known, principal in self._tokens:  # no early exit: same time for every token
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    async def _api_key(self, accounts: Accounts, value: str) -> Principal | None:
        match = await accounts.key_user(value)
        if match is None:
            return None
        key, owner = match
        # A key never has more than its owner has now (the owner may have been narrowed since); a
        # regulator's key is a regulator's, and a ranked key of an owner turned regulator is nothing.
        if REGULATOR in (key.role, owner.role):
            if key.role != owner.role:
                return None
            role, estates = REGULATOR, None
        else:
            role = min(key.role, owner.role, key=ROLE_RANK.__getitem__)
            scopes = [s for s in (self.scope_of(key.estates), self.scope_of(owner.estates)) if s is not None]
            estates = frozenset.intersection(*scopes) if scopes else None
        return Principal(
            f"{owner.username}/key:{key.key_id}", role, estates, "key", key.name, "", owner.username,
            owner.job,
        )  # fmt: skip


def bearer(auth: TokenAuth) -> Callable[[HTTPConnection], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the caller's Principal, or 401. Declares no policy (see require)."""
    return auth.dependency


def require(auth: TokenAuth, role: str, every_estate: bool = False, regulator: bool = False) -> Any:
    """A route dependency (`dependencies=[require(auth, "operator")]`): 401 without credentials, 403
    below `role` (and, with `every_estate`, 403 for a caller scoped to some estates: a route whose answer
    spans all of them, like /metrics). With `regulator`, the regulator passes too (it is no rank: only
    routes that name it let it in). It is also the route's declared policy, read back by
    route_policy(), route_spans_every_estate() and route_admits_regulator()."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    async def check(user: Annotated[Principal, Depends(auth.dependency)]) -> Principal:
        if regulator and user.regulator:
            return user
        if not user.at_least(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{role}s and above may do this")
        if every_estate and user.estates is not None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs a credential for every estate")
        return user

    setattr(check, POLICY_ATTR, role)
    setattr(check, EVERY_ESTATE_ATTR, every_estate)
    setattr(check, REGULATOR_ATTR, regulator)
    return Depends(check)


async def _public() -> None:
    """No credential needed (health, login, signed ack links)."""


setattr(_public, POLICY_ATTR, PUBLIC)


def public() -> Any:
    """A route dependency that declares the route open to anyone."""
    return Depends(_public)


def declare(role: str) -> Any:
    """A route dependency that only declares `role` and checks nothing: for a handler that enforces it
    itself, e.g. a WebSocket that must accept and then close with 4401/4403 rather than refuse the
    handshake. Prefer require() everywhere else."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    async def declared() -> None:
        """Policy declared here, enforced in the handler."""

    setattr(declared, POLICY_ATTR, role)
    return Depends(declared)


def route_policy(route: APIRoute | APIWebSocketRoute) -> str | None:
    """The least role a route declared ("viewer" ... "admin", or "public"); None: it declared none."""
    for dependency in route.dependant.dependencies:
        role = getattr(dependency.call, POLICY_ATTR, None)
        if isinstance(role, str):
            return role
    return None


def route_spans_every_estate(route: APIRoute | APIWebSocketRoute) -> bool:
    """Did the route declare require(..., every_estate=True)?"""
    return any(getattr(d.call, EVERY_ESTATE_ATTR, False) is True for d in route.dependant.dependencies)


def route_admits_regulator(route: APIRoute | APIWebSocketRoute) -> bool:
    """Did the route declare require(..., regulator=True)?"""
    return any(getattr(d.call, REGULATOR_ATTR, False) is True for d in route.dependant.dependencies)


def routes_of(routes: Iterable[BaseRoute]) -> Iterator[tuple[str, APIRoute | APIWebSocketRoute]]:
    """(full path, route) of every API and WebSocket route, through included routers (FastAPI keeps
    an included router as one lazy entry in `app.routes`; older versions copied its routes in)."""
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            yield route.path, route
            continue
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            continue
        for context in contexts():
            original = context.original_route
            if isinstance(original, APIRoute | APIWebSocketRoute):
                yield context.path or original.path, original
