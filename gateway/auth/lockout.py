"""Lock-out after repeated login failures: per username (whether it exists or not, so the answer says
nothing about existence) and per source address (one address guessing many usernames).

Kept in memory, bounded: a restart forgets the counters, and each instance of a scale-out counts on its
own (an attacker spread over N instances gets N times the attempts; still far from a useful guess rate).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from gateway.model import Clock

__all__ = ["LockOut", "LockOutPolicy"]


@dataclass(frozen=True)
class LockOutPolicy:
    failures: int = 5  # per username within `window` → locked for `duration`
    window: float = 900.0
    duration: float = 900.0
    address_failures: int = 20  # per source address within `window` → throttled for `duration`
    max_tracked: int = 10_000  # names/addresses kept; the oldest is forgotten first


class _Counter:
    """Failure times per key within the window, and until when a key is blocked."""

    def __init__(self, limit: int, policy: LockOutPolicy) -> None:
        self.limit, self.policy = limit, policy
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._until: OrderedDict[str, float] = OrderedDict()

    def blocked(self, key: str, now: float) -> float:
        until = self._until.get(key, 0.0)
        if until <= now:
            self._until.pop(key, None)
            return 0.0
        return until - now

    def fail(self, key: str, now: float) -> bool:
        fails = self._fails.pop(key, None) or deque(maxlen=self.limit)
        fails.append(now)
        while fails and fails[0] <= now - self.policy.window:
            fails.popleft()
        self._fails[key] = fails  # most recent last
        if len(self._fails) > self.policy.max_tracked:
            self._fails.popitem(last=False)
        if len(fails) >= self.limit:
            self._until[key] = now + self.policy.duration
            self._until.move_to_end(key)
            if len(self._until) > self.policy.max_tracked:
                self._until.popitem(last=False)
            fails.clear()
            return True
        return False

    def clear(self, key: str) -> None:
        self._fails.pop(key, None)


class LockOut:
    def __init__(self, policy: LockOutPolicy, clock: Clock) -> None:
        self.policy, self.clock = policy, clock
        self._users = _Counter(policy.failures, policy)
        self._addresses = _Counter(policy.address_failures, policy)

    def blocked(self, username: str, address: str) -> tuple[str, float] | None:
        """("user" | "address", seconds left) when a login must be refused before checking it."""
        now = self.clock.now()
        if left := self._users.blocked(username, now):
            return "user", left
        if left := self._addresses.blocked(address, now):
            return "address", left
        return None

    def failed(self, username: str, address: str) -> list[str]:
        """Count a failure; the kinds ("user", "address") that it just locked."""
        now = self.clock.now()
        locked = []
        if self._users.fail(username, now):
            locked.append("user")
        if address and self._addresses.fail(address, now):
            locked.append("address")
        return locked

    def succeeded(self, username: str) -> None:
        self._users.clear(username)
