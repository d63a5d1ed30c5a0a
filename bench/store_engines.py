#!/usr/bin/env python3
"""Incident-change commits/s on SQLite (WAL) and PostgreSQL (asyncpg pool), through the real
IncidentService, one writer and (PostgreSQL) two instances writing at once.

Method. Each run opens a fresh store (SQLite file in a temp dir; PostgreSQL: a fresh database on a private
server started here on a free port, never the system cluster) and calls `IncidentService.apply` for a
fixed time with batches of B alarm transitions on distinct keys: one batch opens B new incidents, the
next clears them (B updates), and so on; every `apply` is one commit holding B changes and their timeline
entries. Figures: commits/s and changes/s. PostgreSQL runs twice: `fsync=on` (the server default,
durable to power loss) and `fsync=off` (durable to a crash of the server process only, which is what
SQLite's WAL with synchronous=NORMAL promises). "x2 instances" is two stores (two pools, as two gateway
processes would have) writing to one database at once, on different estates.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.integration.postgres

from gateway.alerts import Transition
from gateway.incidents import Grouping, IncidentService
from gateway.model import ManualClock, Priority
from gateway.store import PostgresStore, SqliteStore, Store
from tests.integration.postgres import PostgresProcess

NO_GROUPING = Grouping(correlation_window=0, flood_count=10**9)


async def _writer(store: Store, estate: str, batch: int, seconds: float) -> tuple[int, int]:
    service = IncidentService(store, ManualClock(1.0), grouping=NO_GROUPING)
    await service.start()
    commits = changes = 0
    deadline = time.monotonic() + seconds
    round_no = 0
    while time.monotonic() < deadline:
        active = round_no % 2 == 0
        keys = [f"{estate}/d{round_no // 2}-{k}/r" for k in range(batch)]
        transitions = [
            Transition(
                key,
                estate,
                key.split("/")[1],
                "r",
                Priority.HIGH,
                active,
                float(round_no),
                1,
                "告警",
                "alarm",
            )
            for key in keys
        ]
        changes += len(await service.apply(transitions))
        commits += 1
        round_no += 1
    return commits, changes


async def _measure(stores: list[Store], batch: int, seconds: float) -> tuple[float, float]:
    for store in stores:
        await store.open()
    try:
        results = await asyncio.gather(
            *(_writer(store, f"e{n}", batch, seconds) for n, store in enumerate(stores))
        )
    finally:
        for store in stores:
            await store.close()
    return sum(c for c, _ in results) / seconds, sum(ch for _, ch in results) / seconds


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s per case (about 20 s in all)")
    parser.add_argument("--seconds", type=float, default=0.0, help="per case (default 5, --quick 1)")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}, "
        f"{seconds:g} s per case"
    )
    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="eg-bench-store-") as tmp:
        for batch in (1, 50):
            rate = await _measure([SqliteStore(Path(tmp) / f"b{batch}.db")], batch, seconds)
            rows.append(("sqlite (WAL, synchronous=NORMAL)", batch, *rate))
        for fsync in ("on", "off"):
            with PostgresProcess(settings={"fsync": fsync, "full_page_writes": fsync}) as server:
                for batch in (1, 50):
                    for instances in (1, 2):
                        db = server.create_database(f"bench_{batch}_{instances}")
                        stores: list[Store] = [PostgresStore(server.dsn(db)) for _ in range(instances)]
                        rate = await _measure(stores, batch, seconds)
                        label = f"postgres fsync={fsync}" + (" x2 instances" if instances == 2 else "")
                        rows.append((label, batch, *rate))
    print()
    print(f"{'engine':38}{'changes/commit':>15}{'commits/s':>12}{'changes/s':>12}")
    for label, batch, commits, changes in rows:
        print(f"{label:38}{batch:>15}{commits:>12,.0f}{changes:>12,.0f}")
    if any(commits <= 0 for _, _, commits, _ in rows):
        print("invalid run: a case made no commit")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
