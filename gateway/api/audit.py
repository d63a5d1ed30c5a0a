"""The audit trail of the HTTP API: every state-changing call (POST/PUT/PATCH/DELETE), allowed or not,
lands in the store's audit table once, from this middleware, with who, when, from where, which route,
which estate and target, and the status it ended with. Routes add what only they know (the username of
a failed login, the estate of a user account) with `annotate()`; nothing secret is ever recorded.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.auth import AUDIT_NOTE_KEY, PRINCIPAL_KEY, UNSAFE_METHODS, Principal, client_address
from gateway.model import AuditEntry, Clock, SystemClock

__all__ = ["AuditTrail", "EstateResolver", "annotate"]

log = logging.getLogger(__name__)
NOTE_KEY = AUDIT_NOTE_KEY
# Path parameters that name the target estate through a lookup (e.g. incident_id → its estate).
SECRET_PARAMS = frozenset({"token"})  # a signed ack link is a credential: never recorded
EstateResolver = Callable[[str], Awaitable[str | None]]


def annotate(conn: HTTPConnection, **fields: Any) -> None:
    """Add to this request's audit entry: `action` (default "METHOD /route/{template}"), `actor` (when
    no credential names one), `estate`, `target`, `outcome` (default "ok" below 400, else the status),
    and anything else, which goes to `detail`. Never a secret."""
    conn.scope.setdefault(NOTE_KEY, {}).update(fields)


class AuditTrail:
    """ASGI middleware. `record` writes an entry (store.record_audit); a failure to write is logged,
    never turned into a failed request after the fact."""

    def __init__(
        self,
        app: ASGIApp,
        record: Callable[[AuditEntry], Awaitable[None]],
        trusted_proxies: frozenset[str] = frozenset(),
        resolvers: Mapping[str, EstateResolver] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.app, self.record = app, record
        self.trusted = trusted_proxies
        self.resolvers = dict(resolvers or {})
        self.clock = clock or SystemClock()
        self.written = 0
        self.errors = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        started = self.clock.now()
        written = False

        async def watch(message: Message) -> None:
            nonlocal written
            if message["type"] == "http.response.start" and not written:
                # Written before the answer leaves: a client that reads /audit next finds its call.
                written = True
                await self._write(scope, started, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if not written:  # the app raised before answering: the server answers 500
                await self._write(scope, started, 500)

    async def _write(self, scope: Scope, ts: float, status: int) -> None:
        try:
            await self.record(await self._entry(scope, ts, status))
            self.written += 1
        except Exception as exc:  # a failed write must show (log, counter), not fail the operator's call
            self.errors += 1
            route = getattr(
                scope.get("route"), "path", "(no route)"
            )  # never the raw path: it may hold a link
            log.warning("audit: could not record %s %s: %s", scope["method"], route, type(exc).__name__)

    async def _estate(self, params: dict[str, str]) -> str | None:
        for name, resolve in self.resolvers.items():
            if name in params:
                try:
                    return await resolve(params[name])
                except Exception:  # an unknown or malformed id: no estate to record
                    return None
        return None

    async def _entry(self, scope: Scope, ts: float, status: int) -> AuditEntry:
        note: dict[str, Any] = dict(scope.get(NOTE_KEY, {}))
        principal: Principal | None = scope.get(PRINCIPAL_KEY)
        route = f"{scope['method']} {getattr(scope.get('route'), 'path', None) or '(no route)'}"  # never raw
        params: dict[str, str] = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
        estate = note.pop("estate", None) or params.get("estate") or await self._estate(params)
        if not estate and principal is not None and principal.estates and len(principal.estates) == 1:
            [estate] = principal.estates  # a caller of one estate can only have acted on that one
        noted_actor = str(note.pop("actor", "") or "-")
        target = note.pop("target", None) or "/".join(
            v for k, v in params.items() if k != "estate" and k not in SECRET_PARAMS
        )
        outcome = note.pop("outcome", None) or ("ok" if status < 400 else str(status))
        action = str(note.pop("action", None) or route)
        detail = {"status": status, "via": principal.kind if principal else "anonymous", **note}
        if action != route:
            detail["route"] = route
        return AuditEntry(
            ts,
            principal.name if principal else noted_actor,
            client_address(HTTPConnection(scope), self.trusted),
            action,
            estate or "",
            str(target),
            str(outcome),
            detail,
        )
