"""Every instance's live feed shows every estate: incident changes committed by other instances arrive
by PostgreSQL LISTEN/NOTIFY (gateway/store/postgres_changes.py) and are read back from the store.

One dedicated connection (not from the store's pool: a pooled connection must carry no LISTEN), reopened
with backoff when the server goes away. Notices are handled in order by one task; an incident is read
once per notice with its timeline, and the entries the change added are the timeline's last ones. What
this instance committed itself is already on its feed and is skipped. A relay outage costs live updates
only: the console resynchronises from the store (GET /incidents) when its feed reports a gap.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from gateway.incidents.live import LiveFeed
from gateway.incidents.manager import IncidentChange
from gateway.store.postgres import PostgresStore
from gateway.store.postgres_changes import CHANGES_CHANNEL, ChangeNotice, parse_notice

log = logging.getLogger(__name__)

__all__ = ["IncidentRelay"]


class IncidentRelay:
    def __init__(self, store: PostgresStore, origin: str, live: LiveFeed, queue_size: int = 1000) -> None:
        self.store, self.origin, self.live = store, origin, live
        self._notices: asyncio.Queue[ChangeNotice] = asyncio.Queue(queue_size)
        self.relayed = 0
        self.dropped = 0  # notices beyond the queue bound (a burst while the store is slow)
        self.malformed = 0
        self.reconnects = 0
        self.connected = False

    async def run(self) -> None:
        """Listen and relay until cancelled."""
        worker = asyncio.create_task(self._relay(), name="cluster-relay")
        try:
            await self._listen()
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await asyncpg.connect(self.store.dsn, timeout=self.store.command_timeout)
                await conn.add_listener(CHANGES_CHANNEL, self._on_notice)
                self.connected, backoff = True, 0.5
                log.info("cluster: listening for other instances' incident changes")
                while not conn.is_closed():
                    await asyncio.sleep(1.0)
                    await conn.execute("SELECT 1")  # notices arrive between statements; detects loss
            except asyncio.CancelledError:
                raise
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.warning("cluster: change listener lost (%s); reconnecting in %.1fs", exc, backoff)
            finally:
                self.connected = False
                if conn is not None:
                    conn.terminate()
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _on_notice(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        notice = parse_notice(str(payload))
        if notice is None:
            self.malformed += 1
            return
        if notice.origin == self.origin:
            return
        try:
            self._notices.put_nowait(notice)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _relay(self) -> None:
        while True:
            notice = await self._notices.get()
            try:
                changes: list[IncidentChange] = []
                for incident_id, new, added in notice.changes:
                    incident = await self.store.get_incident(incident_id)
                    if incident is not None:
                        entries = incident.timeline[-added:] if added else []
                        changes.append(IncidentChange(incident, new, list(entries)))
                self.live.publish_incidents(changes)
                self.relayed += len(changes)
            except Exception:  # the store is away: these updates are lost to the feed, not to the store
                log.warning("cluster: could not read relayed incidents %s", [c[0] for c in notice.changes],
                            exc_info=True)  # fmt: skip

    def health(self) -> dict[str, Any]:
        return {
            "cluster_relay_connected": self.connected,
            "cluster_relayed_changes": self.relayed,
            "cluster_relay_dropped": self.dropped,
            "cluster_relay_reconnects": self.reconnects,
        }
