"""The due-soon reminder: one message to whoever holds the estate's `remind_role` (the engineer on
call) through the escalation machinery's channels, sent directly rather than as an alarm.

Why direct: a "due soon" is not abnormal. As an alarm it would open an incident, count in the alarm load
and the incident KPIs, and climb the escalation ladder; a duty that is merely coming up should do none
of that. So the reminder reuses the escalation parts that fit (the duty roster to find the person, the
channel registry and `deliver` with its retries and fall-over) and skips the ladder. Once overdue, the
duty raises a real alarm, which does escalate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from gateway.config.maintenance import DutyConfig
from gateway.escalation.delivery import DeliveryStats, deliver
from gateway.escalation.types import Channel, Notification, Person
from gateway.maintenance.alarms import ESTATE_DEVICE, due_text
from gateway.maintenance.duty import Judgement
from gateway.maintenance.tracker import MaintenanceEstate
from gateway.model import Clock, Priority

__all__ = ["Reminder"]

log = logging.getLogger(__name__)
PeopleFor = Callable[[str, str, float], list[Person]]  # (estate, role, at) → people on duty


class Reminder:
    """Sends a duty's reminder; `sent` keeps what went out (the console and tests read it)."""

    def __init__(
        self, channels: Mapping[str, Channel], people_for: PeopleFor, clock: Clock,
        stats: DeliveryStats | None = None, attempts: int = 3, backoff: float = 2.0,
    ) -> None:  # fmt: skip
        self.channels, self.people_for, self.clock = channels, people_for, clock
        self.stats, self.attempts, self.backoff = stats, attempts, backoff
        self.sent: list[tuple[str, str, str]] = []  # (estate, duty, person)
        self._warned: set[tuple[str, str]] = set()  # told the log once that nobody can be reminded

    async def __call__(self, estate: MaintenanceEstate, duty: DutyConfig, verdict: Judgement) -> bool:
        now = self.clock.now()
        cfg = estate.config
        channels = [self.channels[name] for name in cfg.remind_channels if name in self.channels]
        people = self.people_for(estate.id, cfg.remind_role, now)
        if not channels or not people:
            if (estate.id, duty.id) in self._warned:
                return False  # tried again every evaluation; said once
            self._warned.add((estate.id, duty.id))
            log.warning("maintenance: %s/%s due soon, but no %s on duty or no channel (%s)",
                        estate.id, duty.id, cfg.remind_role, ", ".join(cfg.remind_channels))  # fmt: skip
            return False
        zh, en = due_text(verdict, estate.timezone)
        notification = Notification(
            estate.id, estate.name_zh, estate.name_en, (), Priority.LOW,
            f"维保即将到期：{duty.name.zh}（应于 {zh} 完成）",
            f"Maintenance due soon: {duty.name.en} (due {en})",
            duty.device or ESTATE_DEVICE, "", now, 0, timezone=estate.timezone,
        )  # fmt: skip
        delivered = False
        for person in people:
            records = await deliver(channels, notification, person, self.attempts, self.backoff,
                                    clock=self.clock, stats=self.stats)  # fmt: skip
            if any(r.outcome == "sent" for r in records):
                delivered = True
                self.sent.append((estate.id, duty.id, person.id))
        return delivered
