"""The live feed over WebSocket: `GET /feed/ws?since=<seq>&epoch=<epoch>`.

Protocol (JSON text messages, server → client):
- `{"type": "hello", "epoch": e, "seq": n}` first: this process's epoch and its latest sequence number.
- then either the items after `since` (when `epoch` matches and the replay ring still holds since + 1),
  or `{"type": "resync", "epoch": e, "seq": n}`: refetch state over REST, then apply the items after n.
- then live items, in order:
  `{"type": "incident", "seq", "incident": <IncidentOut without timeline>, "new": bool, "entries": [...]}`
  `{"type": "device", "seq", "estate", "device", "online", "alarms", "priority", "values": {...}, "ts"}`
- `{"type": "resync", ...}` again whenever the client was too slow and its bounded queue overflowed.
- `{"type": "ping", "ts"}` after `ping_interval` seconds without an item.

Sequence numbers are per process and shared by every client: items outside the caller's estates are
left out, so a scoped client sees gaps that are not losses. A client keeps the last seq it received and
reconnects with it; a real loss is always announced by a resync, never by a gap.

Authentication as for HTTP (bearer header, or the console's session cookie); without it the socket is
accepted and closed with 4401. A browser request from another origin is closed with 4403 (a cookie alone
must not let another site read the feed).
"""

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Depends, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from gateway.api.auth import Principal, bearer, declare, require
from gateway.api.context import ApiContext
from gateway.api.schemas import TimelineOut, incident_out
from gateway.incidents import DeviceState, IncidentUpdate, LiveFeed, LiveItem, LiveSubscription, Resync
from gateway.incidents.manager import alarm_state
from gateway.model import Priority

__all__ = ["feed_router"]

UNAUTHENTICATED, FORBIDDEN_ORIGIN = 4401, 4403


class DeviceStateOut(BaseModel):
    estate: str
    device: str
    online: bool | None = Field(description="None until the gateway has heard of the device")
    alarms: int = Field(description="Active alarms")
    priority: Priority | None = Field(description="The most urgent active alarm's")
    values: dict[str, float | int | bool | str | None] = Field(description="Latest value per point")
    ts: float = Field(description="When this state was published (epoch s)")


class DeviceStatesOut(BaseModel):
    epoch: str
    seq: int = Field(description="The feed position of this snapshot: apply the items after it")
    devices: list[DeviceStateOut]


def feed_router(ctx: ApiContext, queue_size: int = 1000, ping_interval: float = 20.0) -> APIRouter:
    router = APIRouter(tags=["feed"])

    User = Annotated[Principal, Depends(bearer(ctx.auth))]

    @router.get("/feed/devices", response_model=DeviceStatesOut, dependencies=[require(ctx.auth, "viewer")])
    async def device_states(user: User, estate: str | None = None) -> DeviceStatesOut:
        """The devices' state as the feed last published it, in your scope: where a client starts (and
        restarts after a resync), then applies the WebSocket's items after `seq`."""
        if estate is not None and not user.can_see(estate):  # asking must not tell whether it exists
            raise HTTPException(404, "estate not found")
        live = ctx.service.live
        states = [
            DeviceStateOut.model_validate(_state(state))
            for state in live.devices.values()
            if user.can_see(state.estate) and (estate is None or state.estate == estate)
        ]
        return DeviceStatesOut(epoch=live.epoch, seq=live.seq, devices=states)

    # declared, not required: the handler authenticates so that a failure closes with 4401
    @router.websocket("/feed/ws", dependencies=[declare("viewer")])
    async def live_feed(websocket: WebSocket, since: int | None = None, epoch: str | None = None) -> None:
        try:
            user = await ctx.auth.authenticate(websocket)
        except HTTPException:
            await websocket.accept()
            await websocket.close(UNAUTHENTICATED, "unauthenticated")
            return
        await websocket.accept()
        if not _same_origin(websocket):
            await websocket.close(FORBIDDEN_ORIGIN, "cross-origin")
            return
        if not user.at_least("viewer"):  # the regulator: KPIs only, never the live incident feed
            await websocket.close(FORBIDDEN_ORIGIN, "forbidden")
            return
        live = ctx.service.live
        sub, replay = live.attach(since, epoch, _scope(user), queue_size)
        seq = live.seq  # no await since attach: the replay ends here and the queue starts after it
        tasks = {
            asyncio.create_task(_send(websocket, live, sub, replay, seq, ping_interval)),
            asyncio.create_task(_drain(websocket)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:  # a closed socket ends the connection; anything else is a bug to log
                exc = task.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect | OSError | RuntimeError):
                    raise exc
        finally:
            sub.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await websocket.close()

    return router


def _scope(user: Principal) -> Callable[[LiveItem], bool]:
    return lambda item: user.can_see(item.estate)


def _same_origin(websocket: WebSocket) -> bool:
    """No Origin header (a machine client) or the same host as the request: browsers always send it."""
    origin = websocket.headers.get("origin")
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


async def _send(
    websocket: WebSocket,
    live: LiveFeed,
    sub: LiveSubscription,
    replay: list[LiveItem] | None,
    seq: int,
    ping_interval: float,
) -> None:
    await websocket.send_text(json.dumps({"type": "hello", "epoch": live.epoch, "seq": seq}))
    if replay is None:
        await websocket.send_text(_resync(live, seq))
    else:
        for item in replay:
            await websocket.send_text(wire(item))
    while True:
        # asyncio.timeout, not wait_for: no Task per item, so an item reaches the socket in one loop turn
        # after it is published, not three (issue 9: each turn may carry a whole ingest batch).
        try:
            async with asyncio.timeout(ping_interval):
                got: LiveItem | Resync | None = await sub.get()
        except TimeoutError:
            await websocket.send_text(json.dumps({"type": "ping", "ts": time.time()}))
            continue
        while got is not None:  # everything already queued goes out now, in order
            await websocket.send_text(_resync(live, got.seq) if isinstance(got, Resync) else wire(got))
            got = sub.get_nowait()


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def _resync(live: LiveFeed, seq: int) -> str:
    return json.dumps({"type": "resync", "epoch": live.epoch, "seq": seq})


def wire(item: LiveItem) -> str:
    """The item as a JSON message, encoded once however many clients it is sent to."""
    if item.wire is None:
        try:
            item.wire = orjson.dumps(message(item), option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # a timeline detail orjson cannot encode: pydantic's JSON mode can
            item.wire = json.dumps(validated_message(item), ensure_ascii=False)
    return item.wire


def message(item: LiveItem) -> dict[str, Any]:
    """The item's message, built by hand: the pydantic route (`validated_message`) took 25 µs an
    incident, a third of what a live incident cost the event loop per console (issue 9). Its fields
    and values are `IncidentOut`'s, which tests/unit/test_feed_wire.py holds it to."""
    body = item.body
    if not isinstance(body, IncidentUpdate):
        return _device(item.seq, body)
    incident = body.incident
    return {
        "type": "incident",
        "seq": item.seq,
        "incident": {
            "id": incident.id,
            "estate": incident.estate,
            "device": incident.device,
            "rule": incident.rule,
            "priority": incident.priority.value,
            "state": incident.state.value,
            "alarm_state": alarm_state(incident).value,
            "active": incident.active,
            "title": incident.title,
            "title_en": incident.title_en,
            "opened_at": incident.opened_at,
            "opened": _iso(incident.opened_at),
            "updated_at": incident.updated_at,
            "acknowledged_at": incident.acknowledged_at,
            "acknowledged_by": incident.acknowledged_by,
            "escalation_level": incident.escalation_level,
            "latched": incident.latched,
            "chattering": incident.chattering,
            "shelved_until": incident.shelved_until,
            "cause": incident.cause,
            "first_out": incident.first_out,
            "resolved_at": incident.resolved_at,
            "assignee": incident.assignee,
            "evidence": None,  # detail only (GET /incidents/{id})
        },
        "new": body.new,
        "entries": [
            {"ts": e.ts, "time": _iso(e.ts), "action": e.action, "actor": e.actor, "detail": e.detail}
            for e in body.entries
        ],
    }


def validated_message(item: LiveItem) -> dict[str, Any]:
    """The item's message through the API's pydantic models: the reference `message` is tested against."""
    body = item.body
    if isinstance(body, IncidentUpdate):
        entries = [
            TimelineOut(ts=e.ts, time=_iso(e.ts), action=e.action, actor=e.actor, detail=e.detail)
            for e in body.entries
        ]
        return {
            "type": "incident",
            "seq": item.seq,
            "incident": incident_out(body.incident, False).model_dump(mode="json", exclude={"timeline"}),
            "new": body.new,
            "entries": [e.model_dump(mode="json") for e in entries],
        }
    return _device(item.seq, body)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _device(seq: int, state: DeviceState) -> dict[str, Any]:
    return {"type": "device", "seq": seq, **_state(state)}


def _state(state: DeviceState) -> dict[str, Any]:
    values = {
        point: None if isinstance(v, float) and not math.isfinite(v) else v
        for point, v in state.values.items()
    }  # JSON has no NaN or infinity
    return {
        "estate": state.estate,
        "device": state.device,
        "online": state.online,
        "alarms": state.alarms,
        "priority": state.priority.value if state.priority else None,
        "values": values,
        "ts": state.ts,
    }
