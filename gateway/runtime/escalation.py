"""Wire escalation from the config: rosters, policies, channels, ack links, and the engine's task.

Channel names used by a policy but not configured are logged once at start-up (the shipped policies
name console, dingtalk, sms and email; a site configures the ones it has). A step whose channels are all
missing is still recorded in the timeline as a failed notification, so nobody mistakes silence for
delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from gateway.config import GatewayConfig
from gateway.escalation.channels import build_channels
from gateway.escalation.channels.console import NoticeFeed
from gateway.escalation.channels.mqtt import Publish
from gateway.escalation.delivery import AttemptRecord, DeliveryStats, deliver
from gateway.escalation.engine import Escalator, EstateInfo
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
    ) -> None:
        esc = config.escalation
        self.config, self.clock = esc, clock
        self.client = httpx.AsyncClient(timeout=15)
        self.notices = NoticeFeed()
        self.delivery = DeliveryStats()
        wanted = [c for c in esc.channels if c.type != "mqtt" or publish is not None]
        for skipped in sorted({c.name for c in esc.channels} - {c.name for c in wanted}):
            log.warning("escalation: channel %s needs the MQTT connection, which this gateway lacks", skipped)
        self.channels: dict[str, Channel] = build_channels(
            wanted, client=self.client, clock=clock, publish=publish, feed=self.notices
        )
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

    async def _send(
        self, notification: Notification, person: Person, names: Sequence[str]
    ) -> list[AttemptRecord]:
        channels = [self.channels[name] for name in names if name in self.channels]
        if not channels:
            detail = f"none of the step's channels is configured: {', '.join(names)}"
            return [AttemptRecord("-", "failed", detail, self.clock.now())]
        return await deliver(
            channels, notification, person, self.config.attempts, self.config.backoff,
            clock=self.clock, stats=self.delivery,
        )  # fmt: skip

    async def run(self) -> None:
        await self.escalator.run()

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
        }

    async def close(self) -> None:
        await self.client.aclose()
