"""Security and cache headers of the console: a strict Content-Security-Policy (same origin only, no
inline script or style), no framing, and long-lived caching of the versioned static files.

A plain ASGI middleware (not BaseHTTPMiddleware): it only adds headers to the response start, so
streaming and WebSocket traffic pass untouched.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "STATIC", "ConsoleHeaders", "static_files", "static_url"]

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
STATIC_PREFIX = "/console/static/"


class ConsoleHeaders:
    """Adds the console's headers to every HTTP response under /console/ (and the / redirect)."""

    def __init__(self, app: ASGIApp, img_sources: tuple[str, ...] = ()) -> None:
        """`img_sources`: origins of cameras configured `embed: true` (gateway/evidence), the only
        outside addresses the console may load pictures from; none by default."""
        self.app = app
        self.headers = PAGE_HEADERS
        if img_sources:
            csp = CSP.replace("img-src 'self' data:", "img-src 'self' data: " + " ".join(img_sources))
            self.headers = [(b"content-security-policy", csp.encode()), *PAGE_HEADERS[1:]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith("/console")):
            await self.app(scope, receive, send)
            return
        extra = list(self.headers)
        if path.startswith(STATIC_PREFIX):
            # Every URL carries ?v=<content hash>: a new release is a new URL, so a day is safe.
            extra.append((b"cache-control", b"public, max-age=86400"))
        else:
            extra.append((b"cache-control", b"no-store"))  # pages hold live, per-user data

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in extra}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


@cache
def _version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    return f"{STATIC_PREFIX}{name}?v={_version(name)}"
