"""The incident store: the only owner of incident state. SQLite (one instance) or PostgreSQL (several
instances sharing one database); both implement `Store` with the same behaviour."""

from gateway.store.base import IncidentQuery, Store, StoreError
from gateway.store.engines import build_store, store_label
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

__all__ = [
    "IncidentQuery",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "build_store",
    "store_label",
]
