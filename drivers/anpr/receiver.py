"""The HTTP-push receiver: ANPR cameras POST each vehicle here and act on our reply.

    POST /anpr/{estate}/{device}      (token: Authorization Bearer, Basic password, or ?token=)

One request, in order: find the camera → check its token (and source address) → decode → drop a re-send
of a record already taken (same reply as the first time, nothing emitted) → classify against the
vehicle registry → hand the event to the ingest queue and wait, briefly, for the core's commit → reply
open or hold. The reply must be fast (a car is waiting), so the commit wait is bounded; a reply that
went out before its commit is counted. If the queue cannot even take the event in that time the
camera gets 503 and re-sends later: the vehicle waits for the guard, but no read is lost.

Served on its own port (`http_push` in the config) so the cameras' network never reaches the
operators' API.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from drivers.anpr.classifier import PlateClassifier, Verdict
from drivers.anpr.push import PushDecoder
from drivers.errors import DecodeError
from drivers.stats import DeviceStats
from gateway.model import Clock, Envelope

log = logging.getLogger(__name__)
Emit = Callable[[Envelope], Awaitable[None]]
Opener = Callable[[Verdict], None]
# (estate, device, event ts_ns, plate, kind → base64 or URL) → kind → stored ref; must not block
PictureSink = Callable[[str, str, int, str, dict[str, str]], dict[str, str]]
DEDUP_SIZE = 1024


@dataclass
class PushCamera:
    """One camera allowed to push: its token, decoder, classifier and what opens its barrier."""

    estate: str
    device: str
    token: str
    decoder: PushDecoder
    classifier: PlateClassifier
    stats: DeviceStats
    allow_from: frozenset[str] = frozenset()  # source addresses; empty: any
    opener: Opener | None = None  # the lane's relay, for decisions the reply itself does not carry out
    seen: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)  # record → reply
    pictures: PictureSink | None = None  # plate/scene pictures → incident evidence (gateway/evidence)

    def remember(self, record: str, reply: dict[str, Any]) -> None:
        self.seen[record] = reply
        while len(self.seen) > DEDUP_SIZE:
            self.seen.popitem(last=False)


class PushReceiver:
    """Builds the FastAPI app for every push camera of the gateway."""

    def __init__(self, cameras: list[PushCamera], emit: Emit, clock: Clock, commit_wait: float = 1.5) -> None:
        self.cameras = {(c.estate, c.device): c for c in cameras}
        self.emit, self.clock, self.commit_wait = emit, clock, commit_wait
        self.rejected_auth = 0
        self.replied_before_commit = 0
        # Several gateway instances: a push for an estate another instance owns gets 503 (the camera sends
        # it again, to this or another instance behind the same address) instead of a read nobody decides.
        self.owns: Callable[[str], bool] = lambda estate: True
        self.not_owned = 0
        self.busy = 0
        self.app = FastAPI(
            title="estate-gateway camera push", docs_url=None, redoc_url=None, openapi_url=None
        )
        self.app.add_api_route("/anpr/{estate}/{device}", self._post, methods=["POST"])

    async def _post(self, estate: str, device: str, request: Request) -> JSONResponse:
        camera = self.cameras.get((estate, device))
        if camera is None:
            return JSONResponse({"error": "unknown camera"}, status_code=404)
        if not self._authorised(camera, request):
            self.rejected_auth += 1
            camera.stats.error("unauthorized")
            if camera.stats.errors["unauthorized"] & 0xFF == 1:
                log.warning(
                    "%s/%s: push refused: bad or missing token from %s",
                    estate, device, request.client.host if request.client else "?",
                )  # fmt: skip
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if not self.owns(estate):
            self.not_owned += 1
            return JSONResponse({"error": "not this instance's estate"}, status_code=503,
                                headers={"Retry-After": "2"})  # fmt: skip
        body = await request.body()
        return await self.handle(camera, body)

    async def handle(self, camera: PushCamera, body: bytes) -> JSONResponse:
        now = self.clock.now()
        camera.stats.last_seen = now
        try:
            read = camera.decoder.decode(body, int(now * 1e9))
        except DecodeError as exc:
            camera.stats.error(exc.reason)
            if sum(camera.stats.errors.values()) & 0xFF == 1:
                log.warning("%s/%s: rejected push: %s", camera.estate, camera.device, exc)
            return JSONResponse({"error": exc.reason, "detail": str(exc)[:200]}, status_code=400)
        repeat = camera.seen.get(read.record)
        if repeat is not None:
            camera.stats.error("duplicate")
            return JSONResponse(repeat)
        verdict = camera.classifier.classify(read.event)
        if read.pictures and camera.pictures is not None:  # recorded on the event: where they are kept
            attributes = verdict.event.attributes
            refs = camera.pictures(camera.estate, camera.device, verdict.event.ts_ns, attributes["plate"],
                                   read.pictures)  # fmt: skip
            attributes.update({f"picture_{kind}": ref for kind, ref in refs.items()})
        # A record kept through an outage is history: the car has gone, the barrier must not open now.
        opens = verdict.decision.open and not read.offline
        reply = camera.decoder.profile.reply_open if opens else camera.decoder.profile.reply_hold
        committed = asyncio.Event()
        deadline = self.clock.monotonic() + self.commit_wait
        try:
            await asyncio.wait_for(self.emit(Envelope([verdict.event], committed.set)), self.commit_wait)
        except TimeoutError:
            self.busy += 1
            camera.stats.error("busy")
            log.warning(
                "%s/%s: ingest queue full; asking the camera to re-send", camera.estate, camera.device
            )
            return JSONResponse({"error": "busy"}, status_code=503)
        camera.remember(read.record, reply)
        camera.stats.events += 1
        if opens and camera.opener is not None:
            camera.opener(verdict)
        try:
            await asyncio.wait_for(committed.wait(), max(0.0, deadline - self.clock.monotonic()))
        except TimeoutError:
            self.replied_before_commit += 1
        return JSONResponse(reply)

    @staticmethod
    def _authorised(camera: PushCamera, request: Request) -> bool:
        if camera.allow_from and (request.client is None or request.client.host not in camera.allow_from):
            return False
        offered = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            offered = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                offered = base64.b64decode(credentials).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return False
        return bool(offered) and hmac.compare_digest(offered.encode(), camera.token.encode())
