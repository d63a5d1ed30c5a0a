"""Local fallback: when an estate's uplink is down, its critical alarms sound on site.

    every delivery ─observe()─▶ per estate: remote channels (webhook, SMS, robots, e-mail, MQTT) all
                                failing since t0? any success clears it
    each tick: estate failing for ≥ `after` s ─▶ its pending unacknowledged critical incidents
               ─▶ the estate's local outputs (modbus_relay channels) ─▶ a timeline entry, once each

"Pending" is an incident of a covered priority whose latest notification reached nobody remotely: one
the control room has not been told about. A notification that gets through remotely takes it off the
list; acknowledging it does too. The decision only reads delivery results the escalation engine already
has, so it adds no probe traffic to a link that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.escalation.channels.modbus_relay import ModbusRelayChannel
from gateway.escalation.delivery import AttemptRecord
from gateway.escalation.fallback_config import LocalFallbackConfig
from gateway.escalation.types import Notification
from gateway.incidents import IncidentService
from gateway.model import Clock, IncidentState, TimelineEntry

__all__ = ["REMOTE_TYPES", "LocalFallback"]

log = logging.getLogger(__name__)
REMOTE_TYPES = frozenset({"webhook", "sms_http", "dingtalk", "wecom", "feishu", "smtp", "mqtt"})
MAX_PENDING = 1000
ACTION = "local_fallback"  # the timeline entry of a fallback pulse


@dataclass
class Uplink:
    down_since: float | None = None  # first remote failure after the last remote success
    last_ok: float | None = None
    engaged: int = 0  # incidents sounded by the fallback
    failed: int = 0  # pulses that did not go out


class LocalFallback:
    def __init__(
        self,
        configs: Mapping[str, LocalFallbackConfig],
        remote: set[str],
        outputs: Mapping[str, ModbusRelayChannel],
        service: IncidentService,
        clock: Clock,
        tick: float = 0.5,
    ) -> None:
        """`configs` by estate; `remote`: names of the remote channels; `outputs`: relay channels by name."""
        missing = sorted({n for c in configs.values() for n in c.outputs} - set(outputs))
        if missing:
            raise ValueError(f"local_fallback outputs are not modbus_relay channels: {', '.join(missing)}")
        self.configs, self.remote, self.outputs = configs, remote, outputs
        self.service, self.clock, self.tick = service, clock, tick
        self.uplinks = {estate: Uplink() for estate in configs}
        self._pending: OrderedDict[int, str] = OrderedDict()  # incident → estate
        self._wake = asyncio.Event()

    # -- fed by the escalation runtime -----------------------------------------------------------
    def before(self, notification: Notification) -> None:
        """A notification is about to go out: with the uplink already known down, its incidents sound at
        once instead of after this delivery's retries."""
        if self.engaged(notification.estate):
            self._hold(notification)

    def _hold(self, notification: Notification) -> None:
        config = self.configs.get(notification.estate)
        if config is None or notification.priority not in config.priorities:
            return
        for incident_id in notification.incident_ids:
            self._pending[incident_id] = notification.estate
            self._pending.move_to_end(incident_id)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        self._wake.set()

    def observe(self, notification: Notification, attempts: Sequence[AttemptRecord]) -> None:
        uplink = self.uplinks.get(notification.estate)
        remote = [a for a in attempts if a.channel in self.remote]
        if uplink is None or not remote:
            return
        if any(a.outcome == "sent" for a in remote):
            if uplink.down_since is not None:
                log.info("%s: remote notification works again (down %.0f s)", notification.estate,
                         self.clock.now() - uplink.down_since)  # fmt: skip
            uplink.down_since, uplink.last_ok = None, max(a.ts for a in remote)
            for incident_id in notification.incident_ids:
                self._pending.pop(incident_id, None)
            return
        if uplink.down_since is None:
            uplink.down_since = min(a.ts for a in remote)
            log.warning("%s: every remote channel failed; local outputs after %.0f s of this",
                        notification.estate, self.configs[notification.estate].after)  # fmt: skip
        self._hold(notification)  # nobody was told remotely: it sounds once the uplink is down `after` s

    def engaged(self, estate: str, now: float | None = None) -> bool:
        uplink, config = self.uplinks.get(estate), self.configs.get(estate)
        if uplink is None or config is None or uplink.down_since is None:
            return False
        return (now if now is not None else self.clock.now()) - uplink.down_since >= config.after

    # -- its own task ------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await self.sound_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("local fallback pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)

    async def sound_due(self) -> int:
        """Sound the local outputs for pending incidents of estates whose uplink is down long enough."""
        now, sounded = self.clock.now(), 0
        for incident_id, estate in list(self._pending.items()):
            if not self.engaged(estate, now):
                continue
            del self._pending[incident_id]
            incident = await self.service.get(incident_id)
            if incident is None or incident.state is not IncidentState.OPEN:
                continue  # acknowledged meanwhile: somebody knows
            await self._sound(estate, incident_id, now)
            sounded += 1
        return sounded

    async def _sound(self, estate: str, incident_id: int, now: float) -> None:
        config, uplink = self.configs[estate], self.uplinks[estate]
        down = now - (uplink.down_since or now)
        reason = f"local fallback: remote channels failing for {down:.0f} s"
        results = []
        for name in config.outputs:
            delivery = await self.outputs[name].pulse(estate, (incident_id,), f"escalation:{ACTION}", reason)
            results.append({"channel": name, "outcome": delivery.outcome, "detail": delivery.detail[:200]})
            if delivery.outcome == "sent":
                uplink.engaged += 1
            else:
                uplink.failed += 1
        detail = {"down_for_s": round(down, 1), "outputs": results}
        entry = TimelineEntry(self.clock.now(), ACTION, "system", detail)
        await self.service.record_escalation({incident_id: (0, [entry])})

    def health(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            estate: {
                "uplink_down_for_s": None if u.down_since is None else round(now - u.down_since, 1),
                "engaged": self.engaged(estate, now),
                "sounded": u.engaged,
                "failed": u.failed,
                "pending": sum(1 for e in self._pending.values() if e == estate),
            }
            for estate, u in sorted(self.uplinks.items())
        }
