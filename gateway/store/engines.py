"""Which store a site runs on: the `store:` section of the config picks the engine."""

from __future__ import annotations

from pathlib import Path

from gateway.config.schema import StoreConfig
from gateway.store.postgres import PostgresStore
from gateway.store.postgres_pool import dsn_label
from gateway.store.sqlite import SqliteStore

__all__ = ["build_store", "store_label"]


def build_store(config: StoreConfig, base_dir: Path) -> SqliteStore | PostgresStore:
    """The store of that engine, not yet open (`await store.open()` connects and migrates)."""
    if config.engine == "postgres":
        return PostgresStore(config.dsn, pool_min=config.pool_min, pool_max=config.pool_max)
    path = Path(config.path)
    return SqliteStore(path if path.is_absolute() else base_dir / path)


def store_label(store: SqliteStore | PostgresStore) -> str:
    """For the log: engine and file, or engine and host:port/db (never the DSN: it may hold a password)."""
    if isinstance(store, PostgresStore):
        return f"postgres {dsn_label(store.dsn)}"
    return f"sqlite {store.path}"
