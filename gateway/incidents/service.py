"""The one path through which incident state changes: alarm transitions and operator actions.

Each change is decided in memory (IncidentManager), committed to the store, and only then published to
the live feed and reported to the caller. A lock serialises the core and the API so the in-memory view
and the store never disagree. If the commit fails, the in-memory view is reloaded from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from gateway.alerts import Transition
from gateway.incidents.feed import IncidentFeed
from gateway.incidents.live import LiveFeed
from gateway.incidents.manager import Grouping, IncidentChange, IncidentError, IncidentManager
from gateway.model import Clock, Incident, IncidentState, OutOfService, Priority, TimelineEntry
from gateway.store.base import IncidentQuery, Store, StoreError

log = logging.getLogger(__name__)


class IncidentService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        feed: IncidentFeed | None = None,
        grouping: Grouping | None = None,
        live: LiveFeed | None = None,
    ) -> None:
        self.store, self.clock = store, clock
        self.feed = feed or IncidentFeed()
        # The resumable stream of incident and device changes (the WebSocket feed reads it).
        self.live = live or LiveFeed()
        self.grouping = grouping or Grouping()
        self.manager = IncidentManager(self.grouping)
        self._lock = asyncio.Lock()
        self._stale = False  # the in-memory view may disagree with the store (a commit failed)
        self.opened = 0
        # Downstream consumers (metrics sink, KPI engine) told of every committed change, in commit
        # order. They must not block or raise: they only enqueue or count.
        self.listeners: list[Callable[[list[IncidentChange]], None]] = []
        # The estates whose incidents this instance decides (None: all). With several instances on one
        # database (gateway/cluster) each holds only its own estates' unresolved incidents in memory.
        self.estates: frozenset[str] | None = None
        self.not_owned = 0  # transitions of estates another instance decides, left to it

    async def start(self) -> list[str]:
        """Load unresolved incidents; returns the alarm keys that are still active (for the engine)."""
        await self._reload()
        return self.manager.active_keys()

    async def _reload(self) -> None:
        """Rebuild the in-memory view from the store. Raises StoreError while the store is down, and the
        view stays marked stale: no change is decided on a view that may have lost incidents."""
        manager = IncidentManager(self.grouping)
        manager.load([i for i in await self.store.load_unresolved() if self._mine(i.estate)])
        for record in await self.store.load_out_of_service():
            if self._mine(record.estate):
                manager.take_out_of_service(record)
        manager.carry_over(self.manager)
        self.manager = manager
        self._stale = False

    def _mine(self, estate: str) -> bool:
        return self.estates is None or estate in self.estates

    async def own(self, estates: frozenset[str] | None) -> list[str]:
        """Decide only these estates' incidents from now on (they moved between instances): the view is
        rebuilt from the store; returns the alarm keys still active in them. While the store is down the
        departing estates are dropped from memory at once and the rest is rebuilt when it returns."""
        async with self._lock:
            self.estates = estates
            try:
                await self._reload()
            except StoreError:
                kept = [i for i in self.manager.by_id.values() if self._mine(i.estate)]
                manager = IncidentManager(self.grouping)
                manager.load(kept)
                manager.carry_over(self.manager)
                self.manager, self._stale = manager, True
                raise
            return [key for key in self.manager.active_keys() if self._mine(key.split("/", 1)[0])]

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """The one lock on incident state; a stale view is rebuilt before anything is decided on it."""
        async with self._lock:
            if self._stale:
                await self._reload()
            yield

    async def apply(
        self, transitions: list[Transition], windows: dict[str, dict[str, list[float]]] | None = None
    ) -> list[IncidentChange]:
        """Decide and commit the incident changes of these transitions, with the rule windows that changed."""
        if not transitions and not windows:
            return []
        if self.estates is not None:  # another instance decides those estates (gateway/cluster)
            mine = [t for t in transitions if t.estate in self.estates]
            if len(mine) != len(transitions):
                # A departing estate's last input: its MQTT session is closed by now, so its messages
                # are not acknowledged and reach the next owner; counted, never silent.
                self.not_owned += len(transitions) - len(mine)
                log.info("incidents: %d transitions of estates owned elsewhere left to their owner",
                         len(transitions) - len(mine))  # fmt: skip
            transitions = mine
        async with self._locked():
            changes: list[IncidentChange] = []
            for transition in transitions:
                change = self.manager.apply(transition)
                if change is not None:
                    changes.append(change)
            await self._commit(changes, windows)
            self.opened += sum(1 for c in changes if c.new)
            return changes

    async def acknowledge(self, incident_id: int, user: str, source: str = "", note: str = "") -> Incident:
        async with self._locked():
            change = self.manager.acknowledge(incident_id, user, self.clock.now(), source, note)
            return await self._commit_or_current(change, incident_id)

    async def acknowledge_many(
        self,
        incident_ids: list[int],
        user: str,
        source: str = "",
        note: str = "",
        visible: Callable[[Incident], bool] = lambda _: True,
    ) -> dict[int, str]:
        """Ack a batch (a flood) in one turn of the lock and one commit. Each id's outcome:
        `acknowledged`, `already_acknowledged`, `not_found` (no such incident, or `visible` says the caller
        may not see it), or the state that forbids an ack (`resolved`, `closed`)."""
        async with self._locked():
            outcomes: dict[int, str] = {}
            mine: list[int] = []
            for incident_id in dict.fromkeys(incident_ids):
                incident = self.manager.by_id.get(incident_id)
                if incident is None:  # resolved, closed, or never was: the store knows which
                    incident = await self.store.get_incident(incident_id)
                    if incident is None or not visible(incident):
                        outcomes[incident_id] = "not_found"
                    else:
                        outcomes[incident_id] = incident.state.value
                elif not visible(incident):
                    outcomes[incident_id] = "not_found"
                else:
                    mine.append(incident_id)
            changes, acked = self.manager.acknowledge_many(mine, user, self.clock.now(), source, note)
            await self._commit(changes)
            outcomes.update(acked)
            return {incident_id: outcomes[incident_id] for incident_id in dict.fromkeys(incident_ids)}

    def open_incidents(
        self, estates: frozenset[str] | None, estate: str | None = None, priority: Priority | None = None
    ) -> list[int]:
        """Ids of the open (unacknowledged) incidents in scope, optionally of one estate and priority."""
        return [
            i.id for i in self.manager.by_id.values()
            if i.state is IncidentState.OPEN and (estates is None or i.estate in estates)
            and (estate is None or i.estate == estate) and (priority is None or i.priority is priority)
        ]  # fmt: skip

    async def assign(self, incident_id: int, user: str, assignee: str | None) -> Incident:
        async with self._locked():
            incident = await self._any_state(incident_id)
            change = self.manager.assign(incident, user, self.clock.now(), assignee)
            if change is not None:
                await self._commit([change])
            return incident

    async def comment(self, incident_id: int, user: str, text: str) -> Incident:
        async with self._locked():
            incident = await self._any_state(incident_id)
            await self._commit([self.manager.comment(incident, user, self.clock.now(), text)])
            return incident

    async def _any_state(self, incident_id: int) -> Incident:
        """The in-memory incident while unresolved (so the view and the store agree), else the stored one."""
        incident = self.manager.by_id.get(incident_id) or await self.store.get_incident(incident_id)
        if incident is None:
            raise IncidentError(f"incident {incident_id} not found")
        return incident

    async def resolve(self, incident_id: int, user: str, cause: str, note: str = "") -> Incident:
        async with self._locked():
            change = self.manager.resolve(incident_id, user, self.clock.now(), cause, note)
            await self._commit([change])
            return change.incident

    async def close(self, incident_id: int, user: str) -> Incident:
        """Closed: a resolved incident that needs nothing more (reviewed, reported)."""
        async with self._locked():
            incident = await self.store.get_incident(incident_id)
            if incident is None:
                raise IncidentError(f"incident {incident_id} not found")
            if incident.state is not IncidentState.RESOLVED:
                raise IncidentError(f"only a resolved incident can be closed (it is {incident.state.value})")
            now = self.clock.now()
            entry = TimelineEntry(now, "closed", user)
            incident.state, incident.updated_at = IncidentState.CLOSED, now
            incident.timeline.append(entry)
            await self._commit([IncidentChange(incident, entries=[entry])])
            return incident

    async def shelve(self, incident_id: int, user: str, minutes: float, reason: str) -> Incident:
        async with self._locked():
            now = self.clock.now()
            change = self.manager.shelve(incident_id, user, now, now + minutes * 60, reason)
            await self._commit([change])
            return change.incident

    async def unshelve(self, incident_id: int, user: str) -> Incident:
        async with self._locked():
            change = self.manager.unshelve(incident_id, user, self.clock.now())
            return await self._commit_or_current(change, incident_id)

    async def take_out_of_service(
        self, estate: str, device: str, user: str, reason: str, hours: float | None = None
    ) -> OutOfService:
        async with self._locked():
            now = self.clock.now()
            record = OutOfService(estate, device, now, user, reason, now + hours * 3600 if hours else None)
            await self.store.set_out_of_service(record, estate, device)
            self.manager.take_out_of_service(record)
            return record

    async def return_to_service(self, estate: str, device: str) -> list[IncidentChange]:
        async with self._locked():
            await self.store.set_out_of_service(None, estate, device)
            changes = self.manager.return_to_service(estate, device, self.clock.now())
            await self._commit(changes)
            return changes

    async def expire_shelves(self) -> None:
        for estate, device in self.manager.expired_out_of_service(self.clock.now()):
            await self.return_to_service(estate, device)
        if not any(i.shelved_until is not None for i in self.manager.by_id.values()):
            return
        async with self._locked():
            await self._commit(self.manager.expire_shelves(self.clock.now()))

    async def record_escalation(self, updates: dict[int, tuple[int, list[TimelineEntry]]]) -> None:
        """Append the escalation engine's notification attempts to the timelines and raise the levels:
        incident id → (level, entries), in one commit and one turn of the lock, so a flood's 200
        timeline updates do not take the lock from the alert core 200 times."""
        if not updates:
            return
        async with self._locked():
            now, changes = self.clock.now(), []
            for incident_id, (level, entries) in updates.items():
                incident = self.manager.by_id.get(incident_id) or await self.store.get_incident(incident_id)
                if incident is None:
                    continue
                incident.escalation_level = max(incident.escalation_level, level)
                incident.timeline.extend(entries)
                incident.updated_at = now
                changes.append(IncidentChange(incident, entries=entries))
            await self._commit(changes)

    async def _commit_or_current(self, change: IncidentChange | None, incident_id: int) -> Incident:
        """Commit an action's change; an action that changed nothing (a repeated ack) returns the incident
        as stored."""
        if change is not None:
            await self._commit([change])
            return change.incident
        incident = await self.store.get_incident(incident_id)
        if incident is None:
            raise IncidentError(f"incident {incident_id} not found")
        return incident

    async def _commit(
        self, changes: list[IncidentChange], windows: dict[str, dict[str, list[float]]] | None = None
    ) -> None:
        if not changes and not windows:
            return
        try:
            await self.store.commit(changes, windows)
        except StoreError:
            log.exception("store commit failed; the view is rebuilt from the store before the next change")
            self._stale = True
            raise
        self.manager.committed(changes)
        self.feed.publish(changes)
        self.live.publish_incidents(changes)
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception:  # a consumer's bug must not undo or stop a committed change
                log.exception("incident listener %r failed", listener)

    async def get(self, incident_id: int) -> Incident | None:
        if not 0 < incident_id < 2**63:  # beyond SQLite's INTEGER: no such incident (not an OverflowError)
            return None
        return await self.store.get_incident(incident_id)

    async def list(self, query: IncidentQuery) -> list[Incident]:
        return await self.store.list_incidents(query)
