"""Writes for an estate another instance owns go to that instance (DESIGN §6: any instance serves the API
for any estate; the owner is the one place that decides its incidents and drives its devices).

A pure ASGI middleware, outermost: a state-changing request (POST, PUT, PATCH, DELETE) whose path names an
estate (directly, or through an incident id) that a live peer owns is sent on to the peer's API with the
same method, path, query, body and credentials, and the peer's answer is returned as it is. So is a read
of one estate whose answer lives in the owner's memory (device states, tours and duties, console pages of
an estate or device, plate pictures on the owner's disk): `estate_reads`. Incident reads and KPIs are
answered locally from the shared database. The peer
authenticates, authorises and audits it as if it had come directly (sessions, API keys and users live in
the shared database); `X-Forwarded-For` carries the caller's address (list the instances in
`api.auth.trusted_proxies` for the audit trail to show it). A request is forwarded at most once. While an
estate has no live owner (a takeover in progress) the answer is 503 with Retry-After.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx

log = logging.getLogger(__name__)

__all__ = ["FORWARDED_HEADER", "ForwardToOwner", "Owner", "estate_reads", "estate_resolvers"]

FORWARDED_HEADER = "x-estate-gateway-forwarded"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]
EstateOf = Callable[[str], Awaitable[str | None]]  # a path parameter → its estate


@dataclass(frozen=True)
class Owner:
    """Where an estate is processed: here, at a peer's API, or nowhere right now."""

    here: bool
    url: str | None = None  # the peer's API base URL
    retry_after: float = 0.0  # nowhere: seconds until a takeover is expected


def estate_resolvers(incident_estate: EstateOf) -> list[tuple[re.Pattern[str], EstateOf | None]]:
    """Paths that name an estate: directly (None: the first group is the estate) or through a resolver."""

    async def same(value: str) -> str | None:
        return value

    return [
        (re.compile(r"^/incidents/(\d+)/[a-z-]+$"), incident_estate),
        (re.compile(r"^/ack/(\d+)\.[^/]+$"), incident_estate),  # a signed ack link: <incident>.<...>
        (re.compile(r"^/devices/([^/]+)/[^/]+/.+$"), same),
        (re.compile(r"^/estates/([^/]+)/.+$"), same),
        (re.compile(r"^/maintenance/duties/([^/]+)/.+$"), same),
    ]


def estate_reads() -> list[re.Pattern[str]]:
    """GET paths answered from the owner's memory: the estate is the first group, or else the `estate`
    query parameter (a read of every estate is answered here, with what this instance knows)."""
    return [
        re.compile(r"^/devices/([^/]+)/[^/]+$"),
        re.compile(r"^/devices$"),
        re.compile(r"^/feed/devices$"),
        re.compile(r"^/patrol/tours$"),
        re.compile(r"^/maintenance/duties$"),
        re.compile(r"^/evidence/([^/]+)/[^/]+/picture$"),
        re.compile(r"^/console/estates/([^/]+)$"),
        re.compile(r"^/console/devices/([^/]+)/[^/]+$"),
        re.compile(r"^/console/api/estates/([^/]+)/facilities$"),
    ]


class ForwardToOwner:
    def __init__(
        self,
        app: Asgi,
        owner_of: Callable[[str], Awaitable[Owner]],
        resolvers: list[tuple[re.Pattern[str], EstateOf | None]],
        instance: str,
        reads: list[re.Pattern[str]] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.app, self.owner_of, self.resolvers = app, owner_of, resolvers
        self.reads = reads or []
        self.instance, self.timeout = instance, timeout
        self.forwarded = 0
        self.failed = 0
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if FORWARDED_HEADER in headers:
            estate = None
        elif scope["method"] in _UNSAFE:
            estate = await self._estate(scope["path"])
        elif scope["method"] in ("GET", "HEAD"):
            estate = self._read_estate(scope["path"], scope["query_string"])
        else:
            estate = None
        owner = await self.owner_of(estate) if estate is not None else Owner(here=True)
        if owner.here:
            await self.app(scope, receive, send)
        elif owner.url is None:
            await _reply(send, 503, {"detail": f"estate {estate} is being taken over by another instance; "
                                              "retry shortly"}, retry_after=owner.retry_after)  # fmt: skip
        else:
            await self._forward(scope, receive, send, headers, owner.url, estate or "")

    def _read_estate(self, path: str, query: bytes) -> str | None:
        for pattern in self.reads:
            match = pattern.match(path)
            if match is not None:
                if match.groups():
                    return match.group(1)
                values = parse_qs(query.decode("latin-1")).get("estate")
                return values[0] if values and len(values) == 1 else None
        return None

    async def _estate(self, path: str) -> str | None:
        for pattern, resolve in self.resolvers:
            match = pattern.match(path)
            if match is not None:
                try:
                    return await resolve(match.group(1)) if resolve is not None else match.group(1)
                except Exception:  # the route itself answers (404, 503) for what cannot be resolved
                    log.debug("forward: could not resolve the estate of %s", path, exc_info=True)
                    return None
        return None

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], url: str, estate: str
    ) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        client = scope.get("client")
        sent = {k: v for k, v in headers.items() if k not in _HOP}
        sent[FORWARDED_HEADER] = self.instance
        if client:
            prior = headers.get("x-forwarded-for")
            sent["x-forwarded-for"] = f"{prior}, {client[0]}" if prior else str(client[0])
        query = scope["query_string"].decode("latin-1")
        target = url.rstrip("/") + scope["path"] + (f"?{query}" if query else "")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            answer = await self._client.request(scope["method"], target, content=body, headers=sent)
        except httpx.HTTPError as exc:
            self.failed += 1
            log.warning("forward: %s %s for estate %s to %s failed: %s", scope["method"], scope["path"],
                        estate, url, exc)  # fmt: skip
            await _reply(send, 503, {"detail": f"the instance that owns estate {estate} did not answer; "
                                              "retry shortly"}, retry_after=2.0)  # fmt: skip
            return
        self.forwarded += 1
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.multi_items()
               if k.lower() not in _HOP and k.lower() != "content-encoding"]  # fmt: skip
        out.append((b"content-length", str(len(answer.content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": answer.content})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def _reply(send: Send, status: int, body: dict[str, Any], retry_after: float = 0.0) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if retry_after > 0:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
