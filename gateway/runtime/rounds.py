"""Wire guard tours (gateway/patrol) and maintenance duties (gateway/maintenance) from the config.

Both are pipeline observers (punches and generator readings in) with a timer task of their own; their
alarms are committed through IncidentService.apply and then shown to the pipeline's observers (KPI
engine, device states, metrics sink) exactly as the rule engine's are, so an overdue duty counts against
设备完好率 and a patrol alarm appears on the console like any other. Finished tours go to the KPI engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from gateway.alerts import Transition
from gateway.config import GatewayConfig
from gateway.escalation.roster import people_finder
from gateway.incidents import IncidentService
from gateway.kpi import KpiEngine
from gateway.maintenance import MaintenanceTracker, Reminder
from gateway.model import Clock
from gateway.patrol import PatrolTracker
from gateway.runtime.escalation import EscalationRuntime
from gateway.runtime.pipeline import Observer
from gateway.store import Store

__all__ = ["Rounds"]

log = logging.getLogger(__name__)


class Rounds:
    """The patrol and maintenance trackers of this gateway (either may be None: nothing configured)."""

    def __init__(
        self, config: GatewayConfig, store: Store, clock: Clock, service: IncidentService, kpi: KpiEngine,
        observers: list[Observer], escalation: EscalationRuntime | None,
    ) -> None:  # fmt: skip
        self.service, self.observers = service, observers
        self.patrol = PatrolTracker.from_config(config, store, clock, self.apply)
        remind = None
        if escalation is not None:  # due-soon reminders through the escalation channels (reminder.py)
            esc = config.escalation
            remind = Reminder(escalation.channels, people_finder(escalation.rosters), clock,
                              escalation.delivery, esc.attempts, esc.backoff)  # fmt: skip
        self.maintenance = MaintenanceTracker.from_config(config, store, clock, self.apply, remind)
        if self.patrol is not None:
            self.patrol.listeners.append(
                lambda tour: kpi.patrol_tour(tour.estate, tour.due_at, tour.completed, tour.on_time)
            )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def trackers(self) -> list[Observer]:
        """The pipeline observers to add."""
        return [t for t in (self.patrol, self.maintenance) if t is not None]

    async def apply(self, transitions: Sequence[Transition]) -> None:
        """Commit alarms raised outside the rule engine, then tell the observers, as the pipeline does."""
        await self.service.apply(list(transitions))
        for observer in self.observers:
            try:
                observer.observe((), transitions)
            except Exception:
                log.exception("observer %r failed on patrol/maintenance alarms", observer)

    async def start(self) -> None:
        """Load tours and duty states from the store, then run the timers (after the store is open)."""
        if self.patrol is not None:
            await self.patrol.load()
            self._tasks.append(asyncio.create_task(self.patrol.run(), name="patrol"))
        if self.maintenance is not None:
            await self.maintenance.load()
            self._tasks.append(asyncio.create_task(self.maintenance.run(), name="maintenance"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def health(self) -> dict[str, Any]:
        return {
            **(self.patrol.health() if self.patrol else {}),
            **(self.maintenance.health() if self.maintenance else {}),
        }
