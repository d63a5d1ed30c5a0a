"""One write transaction on the SQLite store's connection.

The store's connection is in autocommit mode (`isolation_level=None`: the store says where transactions
begin, `BEGIN IMMEDIATE`, so a write never upgrades a read lock and deadlocks). There, Python's
`with conn:` begins no transaction: each statement, and each row of an `executemany`, commits on its own,
so a multi-row write cut by a kill -9 was left half done. Found by the kill -9 fault test: an incident
whose planning was cut after its first escalation step kept that step only, and counted as planned, its
second step was never sent. Every write of the store goes through `transaction`, the one place that
begins, commits and rolls back.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["transaction"]


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT around the block; ROLLBACK if it raises (the error goes on as it was)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite ends it itself on some errors (disk full, I/O): nothing to undo
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
