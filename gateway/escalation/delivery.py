"""Deliver one notification to one person: retry with backoff, then fall over to the next channel.

    channels [a, b, c] ─▶ a: try ─▶ retryable failure ─▶ sleep backoff·2ⁿ ─▶ try ... (≤ attempts)
                                 └▶ permanent failure / out of attempts ─▶ b: try ... ─▶ first "sent" wins

Every try becomes an AttemptRecord (channel, outcome, detail, ts) for the incident timeline, and is
counted per channel in DeliveryStats (for /health and a channel-health alarm). A channel that breaks
its contract and raises is recorded as a permanent failure, not propagated. `sleep` and the clock are
injected so tests do not wait; nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gateway.escalation.types import Channel, Delivery, Notification, Person
from gateway.model import Clock, SystemClock

__all__ = ["AttemptRecord", "ChannelHealth", "DeliveryStats", "Sleep", "deliver"]

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class AttemptRecord:
    """One try of one channel: what the incident timeline records."""

    channel: str
    outcome: Literal["sent", "failed"]
    detail: str
    ts: float  # epoch s when the try ended
    retryable: bool = False
    attempt: int = 1  # 1-based, per channel


@dataclass
class ChannelHealth:
    sent: int = 0
    failed: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    last_failure_at: float | None = None
    last_success_at: float | None = None


@dataclass
class DeliveryStats:
    """Per-channel counters; logs a channel's first failure and its recovery once, not every try."""

    channels: dict[str, ChannelHealth] = field(default_factory=dict)

    def record(self, attempt: AttemptRecord) -> None:
        health = self.channels.setdefault(attempt.channel, ChannelHealth())
        if attempt.outcome == "sent":
            if health.consecutive_failures:
                log.info(
                    "channel %s delivers again after %d failures",
                    attempt.channel,
                    health.consecutive_failures,
                )
            health.sent += 1
            health.consecutive_failures = 0
            health.last_success_at = attempt.ts
            return
        if health.consecutive_failures == 0:
            log.warning("channel %s failed: %s", attempt.channel, attempt.detail)
        health.failed += 1
        health.consecutive_failures += 1
        health.last_error = attempt.detail[:300]
        health.last_failure_at = attempt.ts

    def failing(self, threshold: int = 3) -> list[str]:
        """Channels whose last `threshold` or more tries all failed."""
        return sorted(n for n, h in self.channels.items() if h.consecutive_failures >= threshold)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(health) for name, health in sorted(self.channels.items())}


async def _try(channel: Channel, notification: Notification, person: Person, seconds: float) -> Delivery:
    try:
        async with asyncio.timeout(seconds):
            return await channel.send(notification, person)
    except TimeoutError:
        return Delivery("failed", retryable=True, detail=f"no result within {seconds:g}s")
    except Exception as exc:  # a channel must not raise; record it rather than lose the notification
        log.exception("channel %s raised instead of returning a Delivery", channel.name)
        return Delivery("failed", retryable=False, detail=f"channel error {type(exc).__name__}: {exc}")


async def deliver(
    channels: Sequence[Channel],
    notification: Notification,
    person: Person,
    attempts: int = 3,
    backoff: float = 2.0,
    *,
    max_backoff: float = 60.0,
    attempt_timeout: float = 120.0,
    sleep: Sleep = asyncio.sleep,
    clock: Clock | None = None,
    stats: DeliveryStats | None = None,
) -> list[AttemptRecord]:
    """Try the channels in order until one delivers; returns every attempt (empty list: no channels).

    A retryable failure is retried on the same channel up to `attempts` tries, waiting backoff, 2·backoff,
    4·backoff ... (at most max_backoff); a permanent one falls over to the next channel at once.
    """
    clock = clock or SystemClock()
    records: list[AttemptRecord] = []
    for channel in channels:
        for number in range(1, max(attempts, 1) + 1):
            result = await _try(channel, notification, person, attempt_timeout)
            record = AttemptRecord(
                channel.name, result.outcome, result.detail, clock.now(), result.retryable, number
            )
            records.append(record)
            if stats is not None:
                stats.record(record)
            if result.outcome == "sent":
                return records
            if not result.retryable or number == attempts:
                break
            await sleep(min(backoff * 2 ** (number - 1), max_backoff))
    return records
