"""Real local receivers for the notification channel tests, on 127.0.0.1 only.

HttpReceiver: asyncio.start_server with a minimal HTTP/1.1 parser (Content-Length bodies, one request
per connection); records every request byte for byte and answers from a script (status, JSON body,
optional delay). SmtpReceiver: aiosmtpd in its own thread, recording envelopes; recipients starting
with "nobody@" get 550, "busy@" get 451; optional AUTH LOGIN/PLAIN offered without TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from gateway.runtime.broker import free_port


@dataclass(frozen=True)
class Received:
    method: str
    target: str  # path and raw query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def raw_query(self) -> str:
        return self.target.partition("?")[2]

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.raw_query).items()}

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # JSON-able; None: {"errcode": 0, "errmsg": "ok"}
    delay: float = 0.0


class HttpReceiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def answer(self, *replies: Reply) -> None:
        """The next requests get these replies in order; after them, `default`."""
        self.script.extend(replies)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> HttpReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {}
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, target, headers, body))
            reply = self.script.popleft() if self.script else self.default
            if reply.delay:
                await asyncio.sleep(reply.delay)
            payload = json.dumps(
                {"errcode": 0, "errmsg": "ok"} if reply.body is None else reply.body
            ).encode()
            writer.write(
                f"HTTP/1.1 {reply.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _Handler:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: SmtpServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


class SmtpReceiver:
    """aiosmtpd on a free port; `login` set: AUTH checks it (offered without TLS, for the test only)."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self._login = login
        kwargs: dict[str, Any] = {}
        if login is not None:
            # AUTH offered without TLS but not required: aiosmtpd warns (an error here) only when required.
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: SmtpServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self._login
        return AuthResult(success=ok, handled=False)  # handled defaults to True: no reply at all

    @property
    def envelopes(self) -> list[Envelope]:
        return self.handler.envelopes

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
