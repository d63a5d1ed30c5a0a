"""SQLite store (WAL). Every call runs on one dedicated thread with one connection, so the event loop
never blocks on disk and writes are serialised exactly as SQLite wants them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.model import (
    AuditEntry,
    EscalationStep,
    Incident,
    OutOfService,
    TimelineEntry,
    VisitorPass,
)
from gateway.store.base import IncidentQuery, StepScope, StoreError
from gateway.store.rows import incident_from_row
from gateway.store.sqlite_accounts import MIGRATION_ACCOUNTS, SqliteAccounts
from gateway.store.sqlite_commands import MIGRATION_COMMANDS, SqliteCommands
from gateway.store.sqlite_kpi import MIGRATION_KPI, SqliteKpi
from gateway.store.sqlite_patrol import MIGRATION_PATROL, SqlitePatrol
from gateway.store.sqlite_tx import transaction

if TYPE_CHECKING:
    from gateway.incidents.manager import IncidentChange

T = TypeVar("T")

MIGRATIONS: list[str] = [
    # 1: incidents and their timeline
    """
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        estate TEXT NOT NULL, device TEXT NOT NULL, rule TEXT NOT NULL, alarm_key TEXT NOT NULL,
        priority TEXT NOT NULL, state TEXT NOT NULL, title TEXT NOT NULL, title_en TEXT NOT NULL DEFAULT '',
        opened_at REAL NOT NULL, updated_at REAL NOT NULL, active INTEGER NOT NULL,
        escalation_level INTEGER NOT NULL DEFAULT 0, assignee TEXT,
        acknowledged_at REAL, acknowledged_by TEXT, resolved_at REAL
    );
    CREATE INDEX incidents_key_state ON incidents(alarm_key, state);
    CREATE INDEX incidents_estate_state ON incidents(estate, state, opened_at);
    CREATE TABLE timeline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        ts REAL NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL
    );
    CREATE INDEX timeline_incident ON timeline(incident_id, id);
    """,
    # 2: latching, chattering, shelving
    """
    ALTER TABLE incidents ADD COLUMN latched INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE incidents ADD COLUMN chattering INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE incidents ADD COLUMN shelved_until REAL
    """,
    # 3: correlation: an incident's member alarms
    """
    ALTER TABLE incidents ADD COLUMN zone TEXT NOT NULL DEFAULT '';
    CREATE TABLE incident_alarms (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        alarm_key TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (incident_id, alarm_key)
    );
    INSERT INTO incident_alarms (incident_id, alarm_key, state)
        SELECT id, alarm_key,
               CASE WHEN latched = 1 THEN 'latched' WHEN active = 1 THEN 'active' ELSE 'normal' END
        FROM incidents
    """,
    # 4: rule windows (event counts) that must survive a restart
    """
    CREATE TABLE rule_windows (alarm_key TEXT PRIMARY KEY, state TEXT NOT NULL)
    """,
    # 5: resolution cause
    """
    ALTER TABLE incidents ADD COLUMN cause TEXT
    """,
    # 6: first-out of a fire sequence
    """
    ALTER TABLE incidents ADD COLUMN first_out INTEGER NOT NULL DEFAULT 0
    """,
    # 7: devices out of service (maintenance), with who, when, why
    """
    CREATE TABLE out_of_service (
        estate TEXT NOT NULL, device TEXT NOT NULL, since REAL NOT NULL, until REAL,
        actor TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (estate, device)
    )
    """,
    # 8: the audit trail of state-changing requests (commands first)
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL,
        action TEXT NOT NULL, estate TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_estate_ts ON audit(estate, ts)
    """,
    # 9: visitor vehicle passes registered through the API (config passes live in the config)
    """
    CREATE TABLE visitor_passes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, estate TEXT NOT NULL, plate TEXT NOT NULL,
        label TEXT NOT NULL, valid_from REAL NOT NULL, valid_until REAL NOT NULL,
        created_by TEXT NOT NULL, created_at REAL NOT NULL
    );
    CREATE INDEX visitor_passes_until ON visitor_passes(valid_until)
    """,
    # 10: escalation ladders: one row per due step (pending → firing → done | cancelled)
    """
    CREATE TABLE escalation_steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        policy TEXT NOT NULL, step INTEGER NOT NULL, repeat INTEGER NOT NULL,
        due_at REAL NOT NULL, state TEXT NOT NULL, fired_at REAL,
        UNIQUE (incident_id, step, repeat)
    );
    CREATE INDEX escalation_steps_due ON escalation_steps(state, due_at)
    """,
    # 11: a step held back to be grouped with others for the same person (alarm flood)
    """
    ALTER TABLE escalation_steps ADD COLUMN hold_until REAL
    """,
    # 12: users, login sessions, API keys (gateway/auth; tables in sqlite_accounts.py)
    MIGRATION_ACCOUNTS,
    # 13: KPI accumulators per estate and day / hour (gateway/kpi; table in sqlite_kpi.py)
    MIGRATION_KPI,
    # cluster: which instance claimed a firing escalation step (PostgreSQL uses it; kept alike here)
    """
    ALTER TABLE escalation_steps ADD COLUMN claimed_by TEXT
    """,
    # two-person rule: pending dangerous commands; job roles: users.job (sqlite_commands.py)
    MIGRATION_COMMANDS,
    # guard tours and maintenance duties: tours, duty states, completion records (sqlite_patrol.py)
    MIGRATION_PATROL,
]

_COLUMNS = (
    "id, estate, device, rule, alarm_key, priority, state, title, title_en, opened_at, updated_at, active, "
    "escalation_level, assignee, acknowledged_at, acknowledged_by, resolved_at, "
    "latched, chattering, shelved_until, zone, cause, first_out"
)

_PASS_COLUMNS = "id, estate, plate, label, valid_from, valid_until, created_by, created_at"
_INSERT = f"INSERT INTO incidents ({_COLUMNS.removeprefix('id, ')}) VALUES ({','.join('?' * 22)})"
_UPDATE = (
    "UPDATE incidents SET "
    + ", ".join(f"{c}=?" for c in _COLUMNS.removeprefix("id, ").split(", "))
    + " WHERE id=?"
)


class SqliteStore(SqliteAccounts, SqliteKpi, SqliteCommands, SqlitePatrol):
    """Store on one SQLite file. `path=":memory:"` works for unit tests."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self.commits = 0

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._conn is not None, "store is not open"
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:  # a write's transaction is rolled back already (sqlite_tx)
                raise StoreError(f"sqlite {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        def connect() -> None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
            _migrate(conn)

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    async def commit(
        self, changes: list[IncidentChange], windows: dict[str, dict[str, list[float]]] | None = None
    ) -> None:
        if not changes and not windows:
            return

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                for change in changes:
                    inc = change.incident
                    row = _row(inc)
                    if change.new:
                        cur = conn.execute(_INSERT, row)
                        assert cur.lastrowid is not None
                        inc.id = cur.lastrowid
                    else:
                        conn.execute(
                            _UPDATE,
                            (*row, inc.id),
                        )
                    conn.executemany(
                        "INSERT INTO incident_alarms (incident_id, alarm_key, state) VALUES (?,?,?) "
                        "ON CONFLICT (incident_id, alarm_key) DO UPDATE SET state = excluded.state",
                        [(inc.id, key, state) for key, state in inc.members.items()],
                    )
                    conn.executemany(
                        "INSERT INTO timeline (incident_id, ts, action, actor, detail) VALUES (?,?,?,?,?)",
                        [
                            (inc.id, e.ts, e.action, e.actor, json.dumps(e.detail, ensure_ascii=False))
                            for e in change.entries
                        ],
                    )
                for key, groups in (windows or {}).items():
                    if any(groups.values()):
                        conn.execute(
                            "INSERT INTO rule_windows (alarm_key, state) VALUES (?, ?) "
                            "ON CONFLICT (alarm_key) DO UPDATE SET state = excluded.state",
                            (key, json.dumps(groups)),
                        )
                    else:
                        conn.execute("DELETE FROM rule_windows WHERE alarm_key = ?", (key,))

        await self._run(write)
        self.commits += 1

    async def load_unresolved(self) -> list[Incident]:
        def read(conn: sqlite3.Connection) -> list[Incident]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM incidents WHERE state IN ('open','acknowledged')"
            ).fetchall()
            return [_incident(conn, row, with_timeline=True) for row in rows]

        return await self._run(read)

    async def set_out_of_service(self, record: OutOfService | None, estate: str, device: str) -> None:
        """Record a device out of service, or (record None) back in service."""

        def write(conn: sqlite3.Connection) -> None:
            if record is None:
                conn.execute("DELETE FROM out_of_service WHERE estate=? AND device=?", (estate, device))
                return
            conn.execute(
                "INSERT INTO out_of_service (estate, device, since, until, actor, reason) "
                "VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (estate, device) DO UPDATE SET since=excluded.since, until=excluded.until, "
                "actor=excluded.actor, reason=excluded.reason",
                (record.estate, record.device, record.since, record.until, record.actor, record.reason),
            )

        await self._run(write)

    async def load_out_of_service(self) -> list[OutOfService]:
        def read(conn: sqlite3.Connection) -> list[OutOfService]:
            rows = conn.execute("SELECT estate, device, since, actor, reason, until FROM out_of_service")
            return [OutOfService(*row) for row in rows.fetchall()]

        return await self._run(read)

    async def record_audit(self, entry: AuditEntry) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO audit (ts, actor, source, action, estate, target, outcome, detail) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (entry.ts, entry.actor, entry.source, entry.action, entry.estate, entry.target, entry.outcome,
                 json.dumps(entry.detail, ensure_ascii=False)),
            )  # fmt: skip

        await self._run(write)

    async def list_audit(self, estates: frozenset[str] | None, limit: int = 100) -> list[AuditEntry]:
        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            sql = "SELECT ts, actor, source, action, estate, target, outcome, detail FROM audit"
            args: list[object] = []
            if estates is not None:
                sql += f" WHERE estate IN ({','.join('?' * len(estates))})" if estates else " WHERE 0"
                args.extend(sorted(estates))
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
            return [
                AuditEntry(ts, actor, source, action, estate, target, outcome, json.loads(detail))
                for ts, actor, source, action, estate, target, outcome, detail in rows
            ]

        return await self._run(read)

    async def add_visitor_pass(self, record: VisitorPass) -> VisitorPass:
        def write(conn: sqlite3.Connection) -> VisitorPass:
            with transaction(conn):
                cursor = conn.execute(
                    "INSERT INTO visitor_passes (estate, plate, label, valid_from, valid_until, created_by, "
                    "created_at) VALUES (?,?,?,?,?,?,?)",
                    (record.estate, record.plate, record.label, record.valid_from, record.valid_until,
                     record.created_by, record.created_at),
                )  # fmt: skip
            return replace(record, id=cursor.lastrowid)

        return await self._run(write)

    async def delete_visitor_pass(self, estate: str, pass_id: int) -> VisitorPass | None:
        def write(conn: sqlite3.Connection) -> VisitorPass | None:
            with transaction(conn):
                row = conn.execute(
                    f"SELECT {_PASS_COLUMNS} FROM visitor_passes WHERE id=? AND estate=?", (pass_id, estate)
                ).fetchone()
                conn.execute("DELETE FROM visitor_passes WHERE id=? AND estate=?", (pass_id, estate))
            return VisitorPass(*row) if row else None

        return await self._run(write)

    async def load_visitor_passes(self, now: float) -> list[VisitorPass]:
        """Passes not yet ended; ended ones are deleted here (the audit trail keeps who made them)."""

        def read(conn: sqlite3.Connection) -> list[VisitorPass]:
            with transaction(conn):
                conn.execute("DELETE FROM visitor_passes WHERE valid_until <= ?", (now,))
            rows = conn.execute(f"SELECT {_PASS_COLUMNS} FROM visitor_passes ORDER BY id").fetchall()
            return [VisitorPass(*row) for row in rows]

        return await self._run(read)

    async def plan_escalation(self, steps: list[EscalationStep]) -> int:
        """Insert steps; a step already planned (same incident, step, repeat) is left as it is."""

        def write(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                cursor = conn.executemany(
                    "INSERT OR IGNORE INTO escalation_steps "
                    "(incident_id, policy, step, repeat, due_at, state) VALUES (?,?,?,?,?,'pending')",
                    [(s.incident_id, s.policy, s.step, s.repeat, s.due_at) for s in steps],
                )
            return cursor.rowcount

        return await self._run(write)

    async def unplanned_incidents(self, limit: int = 500, scope: StepScope | None = None) -> list[int]:
        """Open incidents with no escalation rows: new ones, or ones whose planning a crash cut off."""

        def read(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(
                "SELECT id, estate FROM incidents i WHERE state='open' AND NOT EXISTS "
                "(SELECT 1 FROM escalation_steps s WHERE s.incident_id = i.id) ORDER BY id",
            )
            ids = (row[0] for row in rows if scope is None or row[1] in scope.estates)
            return list(itertools.islice(ids, limit))

        return await self._run(read)

    async def claim_due_steps(
        self, now: float, limit: int = 500, scope: StepScope | None = None
    ) -> list[EscalationStep]:
        """Claim the steps due by `now` whose incident is still open (unacknowledged) and not shelved:
        pending → firing, in one transaction, so each is handed out once. Steps of incidents that were
        acknowledged, resolved or closed meanwhile are cancelled."""

        def claim(conn: sqlite3.Connection) -> list[EscalationStep]:
            with transaction(conn):
                conn.execute(
                    "UPDATE escalation_steps SET state='cancelled' WHERE state IN ('pending','firing') "
                    "AND incident_id IN (SELECT id FROM incidents WHERE state <> 'open')"
                )
                found = conn.execute(
                    "SELECT s.id, s.incident_id, s.policy, s.step, s.repeat, s.due_at, s.hold_until, "
                    "i.estate FROM escalation_steps s JOIN incidents i ON i.id = s.incident_id "
                    "WHERE s.state = 'pending' "
                    "AND s.due_at <= ? AND (i.shelved_until IS NULL OR i.shelved_until <= ?) "
                    "AND (s.hold_until IS NULL OR s.hold_until <= ?) "
                    "ORDER BY s.due_at, s.id",
                    (now, now, now),
                )
                mine = (row[:7] for row in found if scope is None or row[7] in scope.estates)
                rows = list(itertools.islice(mine, limit))
                conn.executemany(
                    "UPDATE escalation_steps SET state='firing', fired_at=?, claimed_by=? WHERE id=?",
                    [(now, scope.claimer if scope else None, row[0]) for row in rows],
                )
            return [EscalationStep(*row) for row in rows]

        return await self._run(claim)

    async def release_firing(self, scope: StepScope | None = None, live: Collection[str] = ()) -> int:
        """Steps left `firing` go back to pending (the notification may have gone out: at-least-once for a
        crash mid-send). Without a scope all of them, at start; with one, as on PostgreSQL: the scope's
        estates, claimed by nobody, by the scope's claimer or by an instance not in `live`."""

        def write(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                if scope is None:
                    sql = "UPDATE escalation_steps SET state='pending' WHERE state='firing'"
                    return conn.execute(sql).rowcount
                rows = conn.execute(
                    "SELECT s.id, i.estate, s.claimed_by FROM escalation_steps s "
                    "JOIN incidents i ON i.id = s.incident_id WHERE s.state='firing'"
                ).fetchall()
                ids = [
                    (row[0],) for row in rows if row[1] in scope.estates
                    and (row[2] is None or row[2] == scope.claimer or row[2] not in live)
                ]  # fmt: skip
                conn.executemany(
                    "UPDATE escalation_steps SET state='pending', claimed_by=NULL WHERE id=?", ids
                )
                return len(ids)

        return await self._run(write)

    async def finish_steps(self, step_ids: list[int]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                done = [(step_id,) for step_id in step_ids]
                conn.executemany("UPDATE escalation_steps SET state='done' WHERE id=?", done)

        await self._run(write)

    async def hold_steps(self, step_ids: list[int], until: float) -> None:
        """Give claimed steps back (pending), not to be claimed before `until`: grouped with the next."""

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "UPDATE escalation_steps SET state='pending', hold_until=? WHERE id=?",
                    [(until, step_id) for step_id in step_ids],
                )

        await self._run(write)

    async def next_due(self, scope: StepScope | None = None) -> float | None:
        def read(conn: sqlite3.Connection) -> float | None:
            rows = conn.execute(
                "SELECT MIN(MAX(s.due_at, COALESCE(s.hold_until, 0))), i.estate FROM escalation_steps s "
                "JOIN incidents i ON i.id = s.incident_id WHERE s.state='pending' GROUP BY i.estate"
            ).fetchall()
            due = [row[0] for row in rows if scope is None or row[1] in scope.estates]
            return min(due) if due else None

        return await self._run(read)

    async def load_windows(self) -> dict[str, dict[str, list[float]]]:
        def read(conn: sqlite3.Connection) -> dict[str, dict[str, list[float]]]:
            rows = conn.execute("SELECT alarm_key, state FROM rule_windows").fetchall()
            return {key: json.loads(state) for key, state in rows}

        return await self._run(read)

    async def get_incident(self, incident_id: int) -> Incident | None:
        def read(conn: sqlite3.Connection) -> Incident | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id=?", (incident_id,)).fetchone()
            return None if row is None else _incident(conn, row, with_timeline=True)

        return await self._run(read)

    async def list_incidents(self, query: IncidentQuery) -> list[Incident]:
        def read(conn: sqlite3.Connection) -> list[Incident]:
            where, args = [], []
            if query.estates is not None:
                where.append(f"estate IN ({','.join('?' * len(query.estates))})" if query.estates else "0")
                args.extend(sorted(query.estates))
            if query.state is not None:
                where.append("state=?")
                args.append(query.state.value)
            if query.priority is not None:
                where.append("priority=?")
                args.append(query.priority.value)
            sql = f"SELECT {_COLUMNS} FROM incidents"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY opened_at DESC, id DESC LIMIT ? OFFSET ?"
            rows = conn.execute(sql, (*args, query.limit, query.offset)).fetchall()
            return [_incident(conn, row, with_timeline=False) for row in rows]

        return await self._run(read)


def _row(inc: Incident) -> tuple[object, ...]:
    """Column values in _COLUMNS order, without the id."""
    return (
        inc.estate, inc.device, inc.rule, inc.alarm_key, inc.priority.value, inc.state.value, inc.title,
        inc.title_en, inc.opened_at, inc.updated_at, int(inc.active), inc.escalation_level, inc.assignee,
        inc.acknowledged_at, inc.acknowledged_by, inc.resolved_at, int(inc.latched), int(inc.chattering),
        inc.shelved_until, inc.zone, inc.cause, int(inc.first_out),
    )  # fmt: skip


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this database has not seen, each in its own transaction. Never destructive."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = row[0] or 0
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        with transaction(conn):
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


_NAMES = tuple(_COLUMNS.split(", "))


def _incident(conn: sqlite3.Connection, row: tuple[Any, ...], with_timeline: bool) -> Incident:
    r = dict(zip(_NAMES, row, strict=True))
    incident = incident_from_row(r)
    members = conn.execute("SELECT alarm_key, state FROM incident_alarms WHERE incident_id=?", (incident.id,))
    incident.members = dict(members.fetchall())
    if with_timeline:
        entries = conn.execute(
            "SELECT ts, action, actor, detail FROM timeline WHERE incident_id=? ORDER BY id", (incident.id,)
        ).fetchall()
        incident.timeline = [
            TimelineEntry(ts, action, actor, json.loads(detail)) for ts, action, actor, detail in entries
        ]
    return incident
