"""`gateway.store.sqlite_tx.transaction` on a real SQLite connection in autocommit mode (the store's)."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.store.sqlite_tx import transaction


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    return c


def rows(conn: sqlite3.Connection) -> list[int]:
    return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]


def test_a_batch_refused_part_way_leaves_nothing(conn: sqlite3.Connection) -> None:
    # what the store did: `with conn:` in autocommit mode begins no transaction
    with pytest.raises(sqlite3.IntegrityError), conn:
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (2,)])
    assert rows(conn) == [1, 2]  # the rows before the refused one stayed: why `transaction` exists
    with pytest.raises(sqlite3.IntegrityError), transaction(conn):
        conn.executemany("INSERT INTO t VALUES (?)", [(3,), (4,), (4,)])
    assert rows(conn) == [1, 2] and not conn.in_transaction
    with transaction(conn):
        conn.executemany("INSERT INTO t VALUES (?)", [(3,), (4,)])
    assert rows(conn) == [1, 2, 3, 4] and not conn.in_transaction


def test_an_error_after_sqlite_ended_the_transaction_itself_goes_on(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError, match="disk is full"), transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL or an I/O error
        raise sqlite3.OperationalError("database or disk is full")
    assert rows(conn) == [] and not conn.in_transaction
