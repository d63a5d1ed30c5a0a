"""The incident store: the only owner of incident state. SQLite now; PostgreSQL shares the interface."""

from gateway.store.base import IncidentQuery, Store, StoreError
from gateway.store.sqlite import SqliteStore

__all__ = ["IncidentQuery", "SqliteStore", "Store", "StoreError"]
