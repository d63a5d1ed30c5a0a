"""Wire escalation from the config: rosters, policies, channels, ack links, and the engine's task.

Channel names used by a policy but not configured are logged once at start-up (the shipped policies
name console, dingtalk, sms and email; a site configures the ones it has). A step whose channels are all
missing is still recorded in the timeline as a failed notification, so nobody mistakes silence for
delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from drivers.commands import Commander
from gateway.config import GatewayConfig
from gateway.escalation.channels import LocalOutputs, ModbusRelayChannel, build_channels
from gateway.escalation.channels.console import NoticeFeed
from gateway.escalation.channels.modbus_relay import Audit
from gateway.escalation.channels.mqtt import Publish
from gateway.escalation.delivery import AttemptRecord, DeliveryStats, deliver
from gateway.escalation.engine import Escalator, EstateInfo
from gateway.escalation.fallback import REMOTE_TYPES, LocalFallback
from gateway.escalation.links import AckLinks
from gateway.escalation.policy import PolicyBook, load_default_policies, merge_policies
from gateway.escalation.roster import Roster, people_finder
from gateway.escalation.types import Channel, Notification, Person
from gateway.incidents import IncidentService
from gateway.model import Clock

log = logging.getLogger(__name__)


class EscalationRuntime:
    def __init__(
        self,
        config: GatewayConfig,
        service: IncidentService,
        locations: dict[tuple[str, str], str],
        clock: Clock,
        publish: Publish | None,
        commanders: Mapping[tuple[str, str], Commander] | None = None,
        audit: Audit | None = None,
    ) -> None:
        esc = config.escalation
        self.config, self.clock = esc, clock
        self.client = httpx.AsyncClient(timeout=15)
        self.notices = NoticeFeed()
        self.delivery = DeliveryStats()
        wanted = [c for c in esc.channels if c.type != "mqtt" or publish is not None]
        for skipped in sorted({c.name for c in esc.channels} - {c.name for c in wanted}):
            log.warning("escalation: channel %s needs the MQTT connection, which this gateway lacks", skipped)
        self.outputs = LocalOutputs()  # on-site relays (modbus_relay channels) and their last pulse
        if commanders is None or audit is None:  # no drivers in this process: no local outputs either
            wanted = [c for c in wanted if c.type != "modbus_relay"]
        self.channels: dict[str, Channel] = build_channels(
            wanted, client=self.client, clock=clock, publish=publish, feed=self.notices,
            commanders=commanders, audit=audit, outputs=self.outputs,
        )  # fmt: skip
        self.fallback = self._fallback(config, wanted, service, clock)
        self.rosters = {e.id: Roster(e.duty, e.timezone) for e in config.estates if e.duty is not None}
        book = PolicyBook(merge_policies(load_default_policies(), esc.policies))
        used = {name for p in book.policies for step in p.steps for name in step.channels}
        if missing := sorted(used - set(self.channels)):
            log.info(
                "escalation: policies name channels not configured here (skipped): %s", ", ".join(missing)
            )
        self.links = (
            AckLinks(esc.public_url, esc.link_secret, esc.link_ttl_hours, clock)
            if esc.public_url and esc.link_secret
            else None
        )
        estates = {e.id: EstateInfo(e.name.zh, e.name.en, e.timezone) for e in config.estates}
        self.escalator = Escalator(
            service, book, people_finder(self.rosters), self._send, clock, estates, locations,
            ack_url=self.links.url if self.links else None, tick=esc.tick, fallback_role=esc.fallback_role,
            group_interval=esc.group_interval, channel_alarm_after=esc.channel_alarm_after,
        )  # fmt: skip

    def _fallback(
        self, config: GatewayConfig, wanted: Sequence[Any], service: IncidentService, clock: Clock
    ) -> LocalFallback | None:
        """Each estate's `local_fallback` over the relay channels built above (None: no estate has one)."""
        configs = {e.id: e.local_fallback for e in config.estates if e.local_fallback is not None}
        if not configs:
            return None
        relays = {n: c for n, c in self.channels.items() if isinstance(c, ModbusRelayChannel)}
        if not relays:  # a process without drivers (no commanders): nothing on site to sound
            log.warning("escalation: local_fallback configured, but this process drives no relay board")
            return None
        remote = {c.name for c in wanted if c.type in REMOTE_TYPES}
        return LocalFallback(configs, remote, relays, service, clock)

    async def _send(
        self, notification: Notification, person: Person, names: Sequence[str]
    ) -> list[AttemptRecord]:
        channels = [self.channels[name] for name in names if name in self.channels]
        if not channels:
            detail = f"none of the step's channels is configured: {', '.join(names)}"
            return [AttemptRecord("-", "failed", detail, self.clock.now())]
        if self.fallback is not None:
            self.fallback.before(notification)
        attempts = await deliver(
            channels, notification, person, self.config.attempts, self.config.backoff,
            clock=self.clock, stats=self.delivery,
        )  # fmt: skip
        if self.fallback is not None:
            self.fallback.observe(notification, attempts)
        return attempts

    async def restore_outputs(self) -> None:
        """Each local output's last pulse, from the audit trail (the last 1000 entries of its estates)."""
        estates = frozenset(s.estate for s in self.outputs.by_channel.values())
        if estates:
            self.outputs.restore(await self.escalator.store.list_audit(estates, limit=1000))

    async def run(self) -> None:
        if self.fallback is None:
            await self.escalator.run()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self.escalator.run(), name="escalation-engine")
            group.create_task(self.fallback.run(), name="escalation-local-fallback")

    def health(self) -> dict[str, Any]:
        stats = self.escalator.stats
        return {
            "escalation_steps_fired": stats.fired,
            "notifications_sent": stats.notifications - stats.failed_notifications,
            "notifications_failed": stats.failed_notifications,
            "nobody_on_duty": stats.nobody_on_duty,
            "escalation_steps_grouped": stats.held,
            "notify_delay_s": stats.delay_percentiles(),  # due → sent, what people waited (incl. grouping)
            "notify_engine_delay_s": stats.delay_percentiles(engine=True),  # deliberate holds excluded
            "channels_failing": self.delivery.failing(),
            "channels": self.delivery.snapshot(),
            **({"local_outputs": self.outputs.snapshot()} if self.outputs.by_channel else {}),
            **({"local_fallback": self.fallback.health()} if self.fallback is not None else {}),
        }

    async def close(self) -> None:
        await self.client.aclose()
