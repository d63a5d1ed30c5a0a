"""PostgreSQL store on asyncpg: the same behaviour as SqliteStore (ids, ordering, JSON detail, epoch-float
times), for several gateway instances sharing one database. Parts: postgres_pool.py (pool, transactions,
error translation), postgres_schema.py (migrations), postgres_escalation.py, postgres_accounts.py,
postgres_kpi.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gateway.model import (
    AuditEntry,
    Incident,
    OutOfService,
    TimelineEntry,
    VisitorPass,
)
from gateway.store.base import IncidentQuery, StoreError
from gateway.store.postgres_accounts import PostgresAccounts
from gateway.store.postgres_changes import CHANGES_CHANNEL, change_notices
from gateway.store.postgres_cluster import PostgresCluster
from gateway.store.postgres_commands import PostgresCommands
from gateway.store.postgres_escalation import PostgresEscalation
from gateway.store.postgres_kpi import PostgresKpi
from gateway.store.postgres_patrol import PostgresPatrol
from gateway.store.rows import incident_from_row

if TYPE_CHECKING:
    from gateway.incidents.manager import IncidentChange
    from gateway.store.postgres_schema import Connection

__all__ = ["PostgresStore"]

_FIELDS = (
    "estate, device, rule, alarm_key, priority, state, title, title_en, opened_at, updated_at, active, "
    "escalation_level, assignee, acknowledged_at, acknowledged_by, resolved_at, "
    "latched, chattering, shelved_until, zone, cause, first_out"
)
_COLUMNS = "id, " + _FIELDS
_NAMES = tuple(_COLUMNS.split(", "))
_INSERT = f"INSERT INTO incidents (id, {_FIELDS}) VALUES ({','.join(f'${n}' for n in range(1, 24))})"
_NEXT_IDS = "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1)"
_MEMBERS = (
    "INSERT INTO incident_alarms (incident_id, alarm_key, state) VALUES ($1,$2,$3) "
    "ON CONFLICT (incident_id, alarm_key) DO UPDATE SET state = excluded.state"
)
_UPDATE = (
    "UPDATE incidents SET "
    + ", ".join(f"{c}=${n}" for n, c in enumerate(_FIELDS.split(", "), 1))
    + " WHERE id=$23"
)
_TIMELINE = "INSERT INTO timeline (incident_id, ts, action, actor, detail) VALUES ($1,$2,$3,$4,$5)"
_PASS_COLUMNS = "id, estate, plate, label, valid_from, valid_until, created_by, created_at"


class PostgresStore(
    PostgresAccounts, PostgresKpi, PostgresEscalation, PostgresCommands, PostgresCluster, PostgresPatrol
):
    """Store on a PostgreSQL database (`dsn`), through a pool of `pool_min`..`pool_max` connections."""

    def __init__(
        self, dsn: str, pool_min: int = 1, pool_max: int = 10, command_timeout: float = 10.0
    ) -> None:
        super().__init__(dsn, pool_min, pool_max, command_timeout)
        self.commits = 0
        # Several instances (gateway/cluster/relay.py): each commit also tells the others which incidents
        # changed, in the same transaction (NOTIFY is delivered only if it commits). None: nobody listens.
        self.notify_origin: str | None = None

    async def commit(
        self, changes: list[IncidentChange], windows: dict[str, dict[str, list[float]]] | None = None
    ) -> None:
        if not changes and not windows:
            return
        created: list[Incident] = []

        async def write(conn: Connection) -> None:
            # A few pipelined statements per commit, not three round trips per change.
            new = [change.incident for change in changes if change.new]
            if new:
                ids = await conn.fetch(_NEXT_IDS, len(new))  # ascending, in the order of the changes
                for inc, row in zip(new, ids, strict=True):
                    inc.id = int(row[0])  # a later change of the batch may update it by its id
                    created.append(inc)
                await conn.executemany(_INSERT, [(inc.id, *_row(inc)) for inc in new])
            updated = [(*_row(change.incident), change.incident.id) for change in changes if not change.new]
            if updated:
                await conn.executemany(_UPDATE, updated)
            members = [
                (c.incident.id, key, state) for c in changes for key, state in c.incident.members.items()
            ]
            if members:
                await conn.executemany(_MEMBERS, members)
            entries = [_entry(c.incident.id, e) for c in changes for e in c.entries]
            if entries:
                await conn.executemany(_TIMELINE, entries)
            for key, groups in (windows or {}).items():
                if any(groups.values()):
                    await conn.execute(
                        "INSERT INTO rule_windows (alarm_key, state) VALUES ($1, $2) "
                        "ON CONFLICT (alarm_key) DO UPDATE SET state = excluded.state",
                        key,
                        json.dumps(groups),
                    )
                else:
                    await conn.execute("DELETE FROM rule_windows WHERE alarm_key = $1", key)
            if self.notify_origin is not None and changes:
                for payload in change_notices(self.notify_origin, changes):
                    await conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, payload)

        try:
            await self._write(write)
        except StoreError:
            for inc in created:  # rolled back: back to "not stored yet", the retry inserts them again
                inc.id = 0
            raise
        self.commits += 1

    async def load_unresolved(self) -> list[Incident]:
        async def read(conn: Connection) -> list[Incident]:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM incidents WHERE state IN ('open','acknowledged') ORDER BY id"
            )
            return await _incidents(conn, rows, with_timeline=True)

        return await self._read(read)

    async def set_out_of_service(self, record: OutOfService | None, estate: str, device: str) -> None:
        """Record a device out of service, or (record None) back in service."""

        async def write(conn: Connection) -> None:
            if record is None:
                await conn.execute("DELETE FROM out_of_service WHERE estate=$1 AND device=$2", estate, device)
                return
            await conn.execute(
                "INSERT INTO out_of_service (estate, device, since, until, actor, reason) "
                "VALUES ($1,$2,$3,$4,$5,$6) "
                "ON CONFLICT (estate, device) DO UPDATE SET since=excluded.since, until=excluded.until, "
                "actor=excluded.actor, reason=excluded.reason",
                record.estate, record.device, record.since, record.until, record.actor, record.reason,
            )  # fmt: skip

        await self._write(write)

    async def load_out_of_service(self) -> list[OutOfService]:
        async def read(conn: Connection) -> list[OutOfService]:
            rows = await conn.fetch(
                "SELECT estate, device, since, actor, reason, until FROM out_of_service "
                'ORDER BY estate COLLATE "C", device COLLATE "C"'
            )
            return [OutOfService(*row) for row in rows]

        return await self._read(read)

    async def record_audit(self, entry: AuditEntry) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO audit (ts, actor, source, action, estate, target, outcome, detail) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                float(entry.ts), entry.actor, entry.source, entry.action, entry.estate, entry.target,
                entry.outcome, json.dumps(entry.detail, ensure_ascii=False),
            )  # fmt: skip

        await self._write(write)

    async def list_audit(self, estates: frozenset[str] | None, limit: int = 100) -> list[AuditEntry]:
        async def read(conn: Connection) -> list[AuditEntry]:
            sql = "SELECT ts, actor, source, action, estate, target, outcome, detail FROM audit"
            args: list[object] = [limit]
            if estates is not None:
                sql += " WHERE estate = ANY($2::text[])"
                args.append(sorted(estates))
            rows = await conn.fetch(sql + " ORDER BY id DESC LIMIT $1", *args)
            return [
                AuditEntry(ts, actor, source, action, estate, target, outcome, json.loads(detail))
                for ts, actor, source, action, estate, target, outcome, detail in rows
            ]

        return await self._read(read)

    async def add_visitor_pass(self, record: VisitorPass) -> VisitorPass:
        async def write(conn: Connection) -> VisitorPass:
            pass_id = await conn.fetchval(
                "INSERT INTO visitor_passes (estate, plate, label, valid_from, valid_until, created_by, "
                "created_at) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id",
                record.estate, record.plate, record.label, record.valid_from, record.valid_until,
                record.created_by, record.created_at,
            )  # fmt: skip
            return replace(record, id=int(pass_id))

        return await self._write(write)

    async def delete_visitor_pass(self, estate: str, pass_id: int) -> VisitorPass | None:
        async def write(conn: Connection) -> VisitorPass | None:
            row = await conn.fetchrow(
                f"DELETE FROM visitor_passes WHERE id=$1 AND estate=$2 RETURNING {_PASS_COLUMNS}",
                pass_id,
                estate,
            )
            return VisitorPass(*row) if row else None

        return await self._write(write)

    async def load_visitor_passes(self, now: float) -> list[VisitorPass]:
        """Passes not yet ended; ended ones are deleted here (the audit trail keeps who made them)."""

        async def write(conn: Connection) -> list[VisitorPass]:
            await conn.execute("DELETE FROM visitor_passes WHERE valid_until <= $1", now)
            rows = await conn.fetch(f"SELECT {_PASS_COLUMNS} FROM visitor_passes ORDER BY id")
            return [VisitorPass(*row) for row in rows]

        return await self._write(write)

    async def load_windows(self) -> dict[str, dict[str, list[float]]]:
        async def read(conn: Connection) -> dict[str, dict[str, list[float]]]:
            rows = await conn.fetch("SELECT alarm_key, state FROM rule_windows")
            return {key: json.loads(state) for key, state in rows}

        return await self._read(read)

    async def get_incident(self, incident_id: int) -> Incident | None:
        async def read(conn: Connection) -> Incident | None:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM incidents WHERE id=$1", incident_id)
            return None if row is None else (await _incidents(conn, [row], with_timeline=True))[0]

        return await self._read(read)

    async def list_incidents(self, query: IncidentQuery) -> list[Incident]:
        async def read(conn: Connection) -> list[Incident]:
            where: list[str] = []
            args: list[object] = [query.limit, query.offset]
            if query.estates is not None:
                args.append(sorted(query.estates))
                where.append(f"estate = ANY(${len(args)}::text[])")
            if query.state is not None:
                args.append(query.state.value)
                where.append(f"state=${len(args)}")
            if query.priority is not None:
                args.append(query.priority.value)
                where.append(f"priority=${len(args)}")
            sql = f"SELECT {_COLUMNS} FROM incidents"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY opened_at DESC, id DESC LIMIT $1 OFFSET $2"
            return await _incidents(conn, await conn.fetch(sql, *args), with_timeline=False)

        return await self._read(read)


def _entry(incident_id: int, e: TimelineEntry) -> tuple[object, ...]:
    return (incident_id, float(e.ts), e.action, e.actor, json.dumps(e.detail, ensure_ascii=False))


def _row(inc: Incident) -> tuple[object, ...]:
    """Column values in _FIELDS order."""
    return (
        inc.estate, inc.device, inc.rule, inc.alarm_key, inc.priority.value, inc.state.value, inc.title,
        inc.title_en, float(inc.opened_at), float(inc.updated_at), bool(inc.active), inc.escalation_level,
        inc.assignee, inc.acknowledged_at, inc.acknowledged_by, inc.resolved_at, bool(inc.latched),
        bool(inc.chattering), inc.shelved_until, inc.zone, inc.cause, bool(inc.first_out),
    )  # fmt: skip


async def _incidents(conn: Connection, rows: Any, with_timeline: bool) -> list[Incident]:
    """Incidents of `rows` with their member alarms (and timelines), in two more queries, not 2 per row."""
    incidents = [_incident(row) for row in rows]
    if not incidents:
        return incidents
    by_id = {inc.id: inc for inc in incidents}
    ids = list(by_id)
    members = await conn.fetch(
        "SELECT incident_id, alarm_key, state FROM incident_alarms WHERE incident_id = ANY($1::bigint[]) "
        'ORDER BY incident_id, alarm_key COLLATE "C"',
        ids,
    )
    for incident_id, key, state in members:
        by_id[incident_id].members[key] = state
    if with_timeline:
        entries = await conn.fetch(
            "SELECT incident_id, ts, action, actor, detail FROM timeline "
            "WHERE incident_id = ANY($1::bigint[]) ORDER BY incident_id, id",
            ids,
        )
        for incident_id, ts, action, actor, detail in entries:
            by_id[incident_id].timeline.append(TimelineEntry(ts, action, actor, json.loads(detail)))
    return incidents


def _incident(row: Any) -> Incident:
    r = dict(zip(_NAMES, row, strict=True))
    incident = incident_from_row(r)
    incident.members = {}
    incident.timeline = []
    return incident
