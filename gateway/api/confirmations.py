"""The two-person rule over HTTP (gateway/auth/two_person.py has the state machine).

`POST /devices/{estate}/{device}/commands` of a command whose `when` holds answers 202 with a pending
request (`hold()` below) and sends nothing. Then:

- `GET /commands/pending?estate=`: the pending requests in the caller's scope (`state=all`: also the
  decided and expired ones of the last 24 h);
- `POST /commands/pending/{request_id}/confirm`: a second, different person of a permitted rank or job
  confirms before the expiry; the command is executed once and its outcome recorded;
- `POST /commands/pending/{request_id}/reject`: the requester withdraws, or a permitted confirmer
  refuses.

Refusals: another estate's or an unknown request 404; the requester confirming, or a caller of a rank
or job not in `confirm_by`, 403; expired 410; already decided (e.g. by another gateway instance) 409.
Every call is in the audit trail (the middleware writes it; these routes say what happened, with the
requester's and the confirmer's names).
"""

import fnmatch
import logging
from collections.abc import Iterable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.api.audit import annotate
from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.auth.two_person import CommandRequest, DangerRule, DualControl, Refused
from gateway.config.schema import DeviceConfig
from gateway.config.tenancy import CommandPolicyConfig

__all__ = ["PendingOut", "command_rules", "confirmation_router", "hold"]

log = logging.getLogger(__name__)

_STATUS = {
    "not_found": status.HTTP_404_NOT_FOUND,
    "same_user": status.HTTP_403_FORBIDDEN,
    "wrong_role": status.HTTP_403_FORBIDDEN,
    "expired": status.HTTP_410_GONE,
    "decided": status.HTTP_409_CONFLICT,
}
_SAY = {
    "not_found": "no such pending command",
    "same_user": "a second person must confirm: not the one who asked",
    "wrong_role": "your role or job may not confirm this command",
    "expired": "the request expired; ask again",
    "decided": "the request was decided already",
}


class PendingOut(BaseModel):
    id: str = Field(description="Request id, for confirm / reject")
    estate: str
    device: str
    command: str
    reason: str
    requested_by: str
    confirm_by: list[str] = Field(description="Ranks or jobs that may confirm")
    created_at: float
    expires_at: float
    state: Literal["pending", "confirmed", "rejected", "expired"]
    decided_by: str | None
    decided_at: float | None
    outcome: str | None = Field(description="Outcome of the executed command (confirmed requests)")
    detail: str


def _out(r: CommandRequest) -> PendingOut:
    return PendingOut(
        id=r.id, estate=r.estate, device=r.device, command=r.command, reason=r.reason,
        requested_by=r.requested_by, confirm_by=list(r.confirm_by), created_at=r.created_at,
        expires_at=r.expires_at, state=r.state, decided_by=r.decided_by, decided_at=r.decided_at,
        outcome=r.outcome, detail=r.detail,
    )  # fmt: skip


def command_rules(
    devices: Iterable[tuple[str, DeviceConfig]],
) -> tuple[dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, DangerRule]]]:
    """(least role, two-person rule) of every configured command, by (estate, device) then command."""
    least: dict[tuple[str, str], dict[str, str]] = {}
    rules: dict[tuple[str, str], dict[str, DangerRule]] = {}
    for estate, device in devices:
        key = (estate, device.id)
        for name, policy in device.commands.items():
            if not isinstance(policy, CommandPolicyConfig):
                least.setdefault(key, {})[name] = policy
                continue
            least.setdefault(key, {})[name] = policy.role
            if not policy.confirm_by:
                continue
            who, when = frozenset(policy.confirm_by), policy.when
            if when == "always":
                rule = DangerRule(who, policy.within)
            else:
                values = tuple(when.is_in) if when.is_in is not None else None
                alarms = tuple(when.alarm or ())
                rule = DangerRule(who, policy.within, when.point, values, when.above, alarms)
            rules.setdefault(key, {})[name] = rule
    return least, rules


class _Plant:
    """The plant as the API sees it: latest readings (console ring) and the incidents' active alarms."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def value(self, estate: str, device: str, point: str) -> float | int | bool | str | None:
        sample = self.ctx.recent.latest(estate, device).get(point) if self.ctx.recent else None
        return None if sample is None or sample.quality != "good" else sample.value

    def alarm_active(self, estate: str, rule_glob: str) -> bool:
        for key, incident in self.ctx.service.manager.by_key.items():
            parts = key.split("/")
            if incident.estate != estate or len(parts) < 3 or incident.members.get(key, "normal") == "normal":
                continue
            if fnmatch.fnmatchcase(parts[2], rule_glob):
                return True
        return False


def _dual(ctx: ApiContext) -> DualControl:
    return DualControl(ctx.service.store, ctx.service.clock)


async def hold(
    ctx: ApiContext, request: Request, user: Principal, estate: str, device: str, command: str, reason: str
) -> JSONResponse | None:
    """When the command needs a second person now: store the request, audit it, and answer 202.
    None: no rule, or its condition does not hold (the caller executes as usual)."""
    rule = ctx.dangerous.get((estate, device), {}).get(command)
    if rule is None or not rule.applies(_Plant(ctx), estate, device):
        return None
    pending = await _dual(ctx).request(estate, device, command, reason, user.person, rule)
    annotate(request, action="command.requested", estate=estate, target=device, outcome="pending",
             command=command, reason=reason, request_id=pending.id, condition=rule.describe(),
             confirm_by=list(pending.confirm_by), expires_at=pending.expires_at)  # fmt: skip
    body = _out(pending).model_dump(mode="json")
    return JSONResponse(body, status.HTTP_202_ACCEPTED)


async def _execute(ctx: ApiContext, decided: CommandRequest) -> tuple[str, str]:
    commander = ctx.commanders.get((decided.estate, decided.device))
    if commander is None:
        return "refused", "the device takes no commands"
    try:
        result = await commander.execute(decided.command)
    except Exception as exc:  # a driver bug: the outcome says the command failed
        log.exception("confirmed command %s to %s/%s failed", decided.command, decided.estate, decided.device)
        return "error", type(exc).__name__
    return result.outcome, result.detail


def confirmation_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["devices"])

    User = Annotated[Principal, Depends(bearer(ctx.auth))]
    viewer, operator = require(ctx.auth, "viewer"), require(ctx.auth, "operator")

    @router.get("/commands/pending", response_model=list[PendingOut], dependencies=[viewer])
    async def list_pending(
        user: User,
        estate: str | None = None,
        state: Annotated[Literal["pending", "all"], Query(description="all: with the last 24 h")] = "pending",
    ) -> list[PendingOut]:
        """Dangerous commands waiting for (or, with state=all, given) a second person's confirmation."""
        if estate is not None and not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        scope = frozenset([estate]) if estate else user.estates
        found = await _dual(ctx).recent(scope)
        return [_out(r) for r in found if state == "all" or r.state == "pending"]

    async def decide(request_id: str, user: Principal, request: Request, confirm: bool) -> PendingOut:
        verb = "confirm" if confirm else "reject"
        try:
            decided = await _dual(ctx).decide(
                request_id, user.estates, user.person, user.role, user.job, confirm
            )
        except Refused as refused:
            found = refused.request
            annotate(request, action=f"command.{verb}", outcome=f"refused:{refused.reason}",
                     **({"estate": found.estate, "target": found.device, "command": found.command,
                         "requested_by": found.requested_by} if found else {}))  # fmt: skip
            raise HTTPException(_STATUS[refused.reason], _SAY[refused.reason]) from None
        names = {"command": decided.command, "requested_by": decided.requested_by, "reason": decided.reason}
        if not confirm:
            annotate(request, action="command.rejected", estate=decided.estate, target=decided.device,
                     outcome="rejected", rejected_by=user.person, **names)  # fmt: skip
            return _out(decided)
        outcome, detail = await _execute(ctx, decided)
        finished = await _dual(ctx).finish(decided, outcome, detail)
        annotate(request, action=f"command:{decided.command}", estate=decided.estate, target=decided.device,
                 outcome=outcome, confirmed_by=user.person, request_id=decided.id, detail=detail,
                 **names)  # fmt: skip
        return _out(finished)

    @router.post("/commands/pending/{request_id}/confirm", response_model=PendingOut, dependencies=[operator])
    async def confirm_command(request_id: str, user: User, request: Request) -> PendingOut:
        """The second person's confirmation: the command is executed now, once."""
        return await decide(request_id, user, request, True)

    @router.post("/commands/pending/{request_id}/reject", response_model=PendingOut, dependencies=[operator])
    async def reject_command(request_id: str, user: User, request: Request) -> PendingOut:
        """The requester withdraws, or a permitted confirmer refuses: nothing is sent."""
        return await decide(request_id, user, request, False)

    return router
