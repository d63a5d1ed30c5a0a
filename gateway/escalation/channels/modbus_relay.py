"""Local outputs: an on-site siren, strobe or PA trigger on a Modbus relay board, as a channel.

    step due ─▶ ModbusRelayChannel.send ─▶ the board's commander (PulseCommander: coil ON, hold, OFF)
                                        ─▶ audit entry (actor escalation:<channel>) ─▶ Delivery

The relay is a place, not a person: a step that tells three people pulses it once (one pulse at a time,
and none again within `min_interval`), and it only sounds for incidents of its own estate. The board's
commander is the one the App built for the device (shared with its poller and the command API), looked
up at send time, since drivers start after escalation is built. The outcome of every pulse is kept in
`LocalOutputs` for /health and the console.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from drivers.commands import Commander
from gateway.escalation.channel_config import ModbusRelayChannelConfig
from gateway.escalation.types import Delivery, Notification, Person
from gateway.model import AuditEntry, Clock

__all__ = ["Audit", "LocalOutputs", "ModbusRelayChannel", "OutputStatus"]

log = logging.getLogger(__name__)
Audit = Callable[[AuditEntry], Awaitable[None]]


@dataclass
class OutputStatus:
    """One local output and its last pulse (what the console shows on the estate page)."""

    channel: str
    estate: str
    device: str
    command: str
    pulses: int = 0
    failures: int = 0
    last_at: float | None = None  # epoch s of the last pulse's end
    last_outcome: str = ""
    last_detail: str = ""
    last_reason: str = ""  # step or fallback that asked for it
    last_ok_at: float | None = None


class LocalOutputs:
    """The local outputs of every estate, by channel name."""

    def __init__(self) -> None:
        self.by_channel: dict[str, OutputStatus] = {}

    def restore(self, entries: Iterable[AuditEntry]) -> int:
        """The last pulse of each output from the audit trail (after a restart); returns how many."""
        restored = 0
        for entry in sorted(entries, key=lambda e: e.ts):  # oldest first: the newest wins
            status = self.by_channel.get(str(entry.detail.get("channel", "")))
            if status is None or not entry.actor.startswith("escalation:") or entry.target != status.device:
                continue
            status.last_at, status.last_outcome = entry.ts, entry.outcome
            status.last_reason = str(entry.detail.get("reason", ""))
            if entry.outcome == "ok":
                status.last_ok_at = entry.ts
            restored += 1
        return restored

    def of_estate(self, estate: str) -> list[OutputStatus]:
        return sorted((s for s in self.by_channel.values() if s.estate == estate), key=lambda s: s.channel)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            name: {"estate": s.estate, "device": s.device, "command": s.command, "pulses": s.pulses,
                   "failures": s.failures, "last_at": s.last_at, "last_outcome": s.last_outcome}
            for name, s in sorted(self.by_channel.items())
        }  # fmt: skip


class ModbusRelayChannel:
    def __init__(
        self,
        config: ModbusRelayChannelConfig,
        commanders: Mapping[tuple[str, str], Commander],
        audit: Audit,
        clock: Clock,
        outputs: LocalOutputs | None = None,
    ) -> None:
        self.name, self.config = config.name, config
        self.commanders, self.audit, self.clock = commanders, audit, clock
        self.outputs = outputs if outputs is not None else LocalOutputs()
        self.status = self.outputs.by_channel.setdefault(
            config.name, OutputStatus(config.name, config.estate, config.device, config.command)
        )
        self._lock = asyncio.Lock()

    async def send(self, notification: Notification, person: Person) -> Delivery:
        reason = f"escalation step {notification.step} ({person.id})"
        return await self.pulse(
            notification.estate, notification.incident_ids, f"escalation:{self.name}", reason
        )

    async def pulse(self, estate: str, incidents: tuple[int, ...], actor: str, reason: str) -> Delivery:
        """Pulse the output for `incidents` of `estate`; never raises."""
        cfg = self.config
        if estate != cfg.estate:
            return Delivery("failed", False, f"{cfg.name} sounds for estate {cfg.estate} only, not {estate}")
        async with self._lock:  # the people of one step arrive together: the first pulses, the rest see it
            last = self.status.last_ok_at
            if last is not None and self.clock.now() - last < cfg.min_interval:
                return Delivery("sent", detail=f"{cfg.command} sounded {self.clock.now() - last:.0f} s ago")
            commander = self.commanders.get((cfg.estate, cfg.device))
            if commander is None:
                outcome, detail = "failed", f"relay board {cfg.device} has no commander (not started?)"
            else:
                result = await commander.execute(cfg.command)
                outcome, detail = result.outcome, result.detail
            await self._record(outcome, detail, incidents, actor, reason)
        if outcome == "ok":
            return Delivery("sent", detail=detail)
        return Delivery("failed", retryable=outcome != "refused", detail=f"{cfg.command} {outcome}: {detail}")

    async def _record(
        self, outcome: str, detail: str, incidents: tuple[int, ...], actor: str, reason: str
    ) -> None:
        now, cfg, status = self.clock.now(), self.config, self.status
        status.last_at, status.last_outcome, status.last_detail, status.last_reason = (
            now,
            outcome,
            detail,
            reason,
        )
        if outcome == "ok":
            status.pulses += 1
            status.last_ok_at = now
            log.warning("%s/%s: local output %s pulsed for incidents %s (%s)",
                        cfg.estate, cfg.device, cfg.command, list(incidents), reason)  # fmt: skip
        else:
            status.failures += 1
            log.error("%s/%s: local output %s failed: %s", cfg.estate, cfg.device, cfg.command, detail)
        entry = AuditEntry(
            now, actor, "", f"command:{cfg.command}", cfg.estate, cfg.device, outcome,
            {"incidents": list(incidents), "reason": reason, "detail": detail[:300], "channel": cfg.name},
        )  # fmt: skip
        try:
            await self.audit(entry)
        except Exception:  # the audit must not silence the siren; the store logs its own failure
            log.exception("%s/%s: audit of a local output pulse failed", cfg.estate, cfg.device)
