"""A private PostgreSQL on a free port (tests and benchmarks), from Debian's server binaries.

`PostgresProcess` runs `initdb` once into its temp dir (trust auth for 127.0.0.1, fsync off: a test
cluster needs no crash safety against the OS, only against the server's own restarts), the unix socket
inside that dir, and never touches the system cluster on 5432. `stop()` is a fast shutdown (SIGINT: open
sessions are cut); `stop(immediate=True)` is SIGQUIT, a crash-like stop followed by recovery on the
next `start()`. As root the server runs as the `postgres` user (PostgreSQL refuses root).

The fixtures: `postgres` (one server per test session), `store_engine` (parametrized `sqlite` /
`postgres`; the PostgreSQL param is an integration test) and `make_store` (a store factory for that
engine: the same name gives the same file or schema, which is how tests restart a store).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gateway.runtime.broker import free_port
from gateway.runtime.process import ServerError, ServerProcess
from gateway.store import PostgresStore, SqliteStore, Store

__all__ = ["PostgresError", "PostgresProcess", "StoreFactory", "make_store", "postgres", "store_engine"]

RUN_AS = "postgres"  # the OS user the server runs as when the tests run as root


class PostgresError(ServerError):
    """The PostgreSQL server binaries are missing or the server did not start."""


def server_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name),
        reverse=True,
    )
    if not found:
        raise PostgresError("no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql")
    return found[-1].parent


class PostgresProcess(ServerProcess):
    """`start()` → a running server on 127.0.0.1:`port`, superuser `postgres`, trust auth."""

    slug = "postgres"
    name = "postgres"
    error = PostgresError
    start_timeout = 30.0

    def __init__(
        self, port: int | None = None, folder: Path | None = None, settings: dict[str, str] | None = None
    ) -> None:
        super().__init__(folder)
        self.settings = settings or {}  # over the defaults below, e.g. {"fsync": "on"} for a benchmark
        self.port = port or free_port()
        self.bin = server_bin()
        self.data_dir = self.folder / "data"
        self.socket_dir = self.folder / "sock"

    def _as_server_user(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", "--", *command]

    def _initdb(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            for path in (self.folder, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        command = [str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust"]
        command += ["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"]
        result = subprocess.run(self._as_server_user(command), capture_output=True, timeout=120, check=False)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed: {result.stderr.decode(errors='replace')[-2000:]}")

    def command(self) -> list[str]:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
            **self.settings,
        }
        args = [str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return self._as_server_user(args)

    def ready(self) -> bool:
        probe = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"]
        return subprocess.run(probe, check=False, timeout=10).returncode == 0

    def stop(self, immediate: bool = False) -> None:
        """Fast shutdown (SIGINT), or with `immediate` SIGQUIT: no checkpoint, recovery at the next start."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):  # the base class kills it then
                self.proc.wait(self.stop_timeout)
        super().stop()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run statements through psql as the superuser; the output."""
        command = [
            str(self.bin / "psql"),
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            self.dsn(database),
        ]
        result = subprocess.run([*command, "-c", statement], capture_output=True, timeout=60, check=False)
        if result.returncode != 0:
            raise PostgresError(f"psql {statement!r}: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def create_database(self, name: str, template: str = "template1") -> str:
        # FILE_COPY (PostgreSQL 15+) copies files: with fsync off about 4x quicker than WAL_LOG.
        strategy = " STRATEGY FILE_COPY" if int(self.bin.parent.name) >= 15 else ""
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        return name

    def create_schema(self, name: str, database: str = "postgres") -> str:
        """A fresh schema and a DSN whose connections work in it (search_path): a clean store for one
        test in ~20 ms, where CREATE DATABASE takes ~0.5 s on a loaded machine."""
        self.sql(f'CREATE SCHEMA "{name}"', database)
        return f"{self.dsn(database)}?search_path={name}"

    def drop_schema(self, name: str, database: str = "postgres") -> None:
        self.sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE', database)


StoreFactory = Callable[..., Store]  # (name="t") → a new store object on that name's file or database


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresProcess]:
    with PostgresProcess() as process:
        yield process


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_engine(request: pytest.FixtureRequest) -> str:
    engine: str = request.param
    return engine


@pytest.fixture
async def make_store(
    store_engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    """A store factory; PostgreSQL stores a test leaves open are closed, and their databases dropped."""
    if store_engine == "sqlite":
        yield lambda name="t": SqliteStore(tmp_path / f"{name}.db")
        return
    server: PostgresProcess = request.getfixturevalue("postgres")
    schemas: dict[str, str] = {}  # name → DSN
    stores: list[PostgresStore] = []

    def make(name: str = "t") -> Store:
        if name not in schemas:
            schemas[name] = server.create_schema(f"t_{uuid.uuid4().hex[:12]}")
        stores.append(PostgresStore(schemas[name], pool_min=1, pool_max=4))
        return stores[-1]

    yield make
    for store in stores:
        await store.close()
    for dsn in schemas.values():
        if server.proc is not None:
            server.drop_schema(dsn.rsplit("=", 1)[1])
