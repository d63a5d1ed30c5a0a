"""The two-person rule (四眼原则) for dangerous device commands.

A command marked dangerous in the site config (`commands: {stop: {role: supervisor, confirm_by:
[supervisor, admin], within: 120, when: ...}}`) is not sent when asked for while its condition holds:
it becomes a pending request (store row) that a second, different user of a permitted role (or job)
must confirm within `within` seconds. Only then is it executed, once, even with two gateway instances
on one database: the confirm is a conditional update (`state='pending' AND expires_at > now`) that one
caller wins.

States: pending → confirmed (then executed, outcome recorded) | rejected | expired (on read, once past
`expires_at`). Refusals of a confirm: `not_found` (also another estate's), `same_user`, `wrong_role`,
`expired`, `decided` (already confirmed or rejected, e.g. by the other instance).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from gateway.model import Clock

__all__ = [
    "CommandRequest",
    "CommandRequestStore",
    "DangerRule",
    "DualControl",
    "PlantState",
    "Refused",
]

State = Literal["pending", "confirmed", "rejected", "expired"]
Reason = Literal["not_found", "same_user", "wrong_role", "expired", "decided"]


class PlantState(Protocol):
    """What a danger condition reads: the latest value of a point, and the estate's active alarms."""

    def value(self, estate: str, device: str, point: str) -> float | int | bool | str | None: ...

    def alarm_active(self, estate: str, rule_glob: str) -> bool: ...


@dataclass(frozen=True)
class DangerRule:
    """When a command needs a second person, and who may be that person. Conditions: none (always),
    a point of the same device (`point` with `values` or `above`), or an active alarm in the estate
    whose rule id matches one of `alarms` (globs, e.g. 'fire_point_fire', 'fire_confirmed*'). A point
    that has not reported counts as dangerous: unknown is not safe."""

    confirm_by: frozenset[str]  # ranks and/or jobs
    within: float
    point: str | None = None
    values: tuple[float | int | bool | str, ...] | None = None
    above: float | None = None
    alarms: tuple[str, ...] = ()

    def applies(self, state: PlantState, estate: str, device: str) -> bool:
        if self.alarms:
            return any(state.alarm_active(estate, glob) for glob in self.alarms)
        if self.point is None:
            return True
        value = state.value(estate, device, self.point)
        if value is None:
            return True
        if self.values is not None:
            return value in self.values
        if self.above is not None:
            return isinstance(value, int | float) and not isinstance(value, bool) and value > self.above
        return True

    def describe(self) -> str:
        if self.alarms:
            return f"alarm {' | '.join(self.alarms)} active"
        if self.point is None:
            return "always"
        if self.values is not None:
            return f"{self.point} in {list(self.values)}"
        return f"{self.point} > {self.above:g}" if self.above is not None else self.point

    def admits(self, role: str, job: str | None) -> bool:
        return role in self.confirm_by or (job is not None and job in self.confirm_by)


@dataclass(frozen=True)
class CommandRequest:
    id: str
    estate: str
    device: str
    command: str
    reason: str
    requested_by: str  # the account (or token name) that asked
    confirm_by: tuple[str, ...]
    created_at: float
    expires_at: float
    state: State = "pending"
    decided_by: str | None = None
    decided_at: float | None = None
    outcome: str | None = None  # of the execution: ok | refused | timeout | failed | error
    detail: str = ""

    def seen_at(self, now: float) -> CommandRequest:
        """As it stands at `now`: a pending request past its expiry reads as expired."""
        if self.state == "pending" and now >= self.expires_at:
            return replace(self, state="expired")
        return self


class CommandRequestStore(Protocol):
    async def add_command_request(self, request: CommandRequest) -> None: ...

    async def get_command_request(self, request_id: str) -> CommandRequest | None: ...

    async def list_command_requests(
        self, estates: frozenset[str] | None, since: float, limit: int = 100
    ) -> list[CommandRequest]:
        """Requests created at or after `since` in those estates (None: all), newest first."""

    async def decide_command_request(
        self, request_id: str, state: State, by: str, at: float
    ) -> CommandRequest | None:
        """Move a pending, unexpired (`expires_at > at`) request to `state`; the updated row, or None when
        another caller decided it first or it expired. Atomic across instances."""

    async def finish_command_request(self, request_id: str, outcome: str, detail: str) -> None: ...


class Refused(Exception):
    """A confirm or reject that cannot be done; `reason` says why (see the module docstring)."""

    def __init__(self, reason: Reason, request: CommandRequest | None = None) -> None:
        super().__init__(reason)
        self.reason, self.request = reason, request


class DualControl:
    """Requests, confirmations and rejections, with the time from the injected clock."""

    def __init__(self, store: CommandRequestStore, clock: Clock) -> None:
        self.store, self.clock = store, clock

    async def request(
        self, estate: str, device: str, command: str, reason: str, requester: str, rule: DangerRule
    ) -> CommandRequest:
        now = self.clock.now()
        request = CommandRequest(
            secrets.token_hex(8), estate, device, command, reason, requester,
            tuple(sorted(rule.confirm_by)), now, now + rule.within,
        )  # fmt: skip
        await self.store.add_command_request(request)
        return request

    async def get(self, request_id: str, scope: frozenset[str] | None) -> CommandRequest | None:
        """The request as it stands now, if within `scope` (None: all)."""
        found = await self.store.get_command_request(request_id)
        if found is None or (scope is not None and found.estate not in scope):
            return None
        return found.seen_at(self.clock.now())

    async def decide(
        self,
        request_id: str,
        scope: frozenset[str] | None,
        user: str,
        role: str,
        job: str | None,
        confirm: bool,
    ) -> CommandRequest:
        """Confirm (or reject) a request; the decided request, or Refused. Rejecting needs no second
        person: the requester may withdraw, and any permitted confirmer may turn it down."""
        found = await self.get(request_id, scope)
        if found is None:
            raise Refused("not_found")
        if found.state == "expired":
            raise Refused("expired", found)
        if found.state != "pending":
            raise Refused("decided", found)
        permitted = role in found.confirm_by or (job is not None and job in found.confirm_by)
        if confirm and user == found.requested_by:
            raise Refused("same_user", found)
        if not permitted and not (not confirm and user == found.requested_by):
            raise Refused("wrong_role", found)
        now = self.clock.now()
        decided = await self.store.decide_command_request(
            request_id, "confirmed" if confirm else "rejected", user, now
        )
        if decided is None:  # lost the race, or it expired in between
            again = await self.get(request_id, scope)
            raise Refused("expired" if again and again.state == "expired" else "decided", again)
        return decided

    async def finish(self, request: CommandRequest, outcome: str, detail: str) -> CommandRequest:
        await self.store.finish_command_request(request.id, outcome, detail)
        return replace(request, outcome=outcome, detail=detail)

    async def recent(self, scope: frozenset[str] | None, horizon: float = 86400.0) -> list[CommandRequest]:
        """Requests of the last `horizon` seconds in scope, as they stand now, newest first."""
        now = self.clock.now()
        return [r.seen_at(now) for r in await self.store.list_command_requests(scope, now - horizon)]
