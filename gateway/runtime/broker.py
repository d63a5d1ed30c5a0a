"""A private Mosquitto on a free port: used by the demo, the tests and the benchmarks.

The process gets its own config file in a temp dir, listens on 127.0.0.1 only, and is stopped by PID.
The gateway never relies on a system broker that may or may not be running.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
from pathlib import Path
from typing import Any, Protocol

from gateway.runtime.process import ServerError, ServerProcess, port_open

CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerError(ServerError):
    """Mosquitto is missing or did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name) or (name if Path(name).is_file() else None)
        if path:
            return path
    return None


class MosquittoProcess(ServerProcess):
    """`start()` → running broker on `port`; `stop()` terminates it (then kills) by PID."""

    slug = name = "mosquitto"
    error = BrokerError
    stop_timeout = 5.0
    log_limit = None  # the whole log: the benchmark prints its tail

    def __init__(self, port: int | None = None, max_inflight: int = 1000, persistence: bool = True) -> None:
        super().__init__()
        self.port = port or free_port()
        self.max_inflight = max_inflight
        self.persistence = persistence

    def _write_config(self) -> Path:
        conf = self.folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # With manual acks, in-flight QoS 1 messages per client bound the gateway's backlog.
            f"max_inflight_messages {self.max_inflight}",
            "max_queued_messages 100000",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.folder}/",
            # Started as root, Mosquitto drops to user `mosquitto`, which cannot write our private temp
            # folder: the persistence file is never saved ("Error: Permission denied" in its log) and a
            # restart loses every session and queued message. Stay the user we are (ignored unless root).
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def command(self) -> list[str]:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto is not installed: run scripts/setup.sh (apt-get install mosquitto)")
        return [binary, "-c", str(self._write_config())]

    def ready(self) -> bool:
        return port_open(self.port)


class EmbeddedBroker:
    """amqtt running inside this process: the demo's fallback where Mosquitto is not installed.

    Demo only. Measured here with amqtt 0.12.1: live QoS 1 delivery works, but messages published
    while a persistent session is offline are not delivered when it reconnects, so the gateway's
    no-loss-across-restarts guarantee needs a real broker (Mosquitto, EMQX).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.pid: int | None = None
        self._broker: Any = None

    async def start(self) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker  # noqa: PLC0415 - optional dependency, demo fallback only
        except ImportError as exc:
            raise BrokerError(
                "no MQTT broker: install mosquitto (scripts/setup.sh) or the 'embedded' extra (amqtt)"
            ) from exc
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
        await self._broker.start()
        return self

    async def aclose(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    @property
    def description(self) -> str:
        return f"in-process amqtt on 127.0.0.1:{self.port} (demo only: no offline QoS 1 queue)"


class LocalBroker(Protocol):
    port: int

    @property
    def description(self) -> str: ...

    async def aclose(self) -> None: ...


class _MosquittoHandle:
    def __init__(self, process: MosquittoProcess) -> None:
        self.process, self.port = process, process.port

    @property
    def description(self) -> str:
        return f"mosquitto pid {self.process.pid} on 127.0.0.1:{self.port}"

    async def aclose(self) -> None:
        self.process.close()


async def start_local_broker(kind: str = "auto") -> LocalBroker:
    """Mosquitto on a free port where the binary is installed, otherwise in-process amqtt."""
    if kind == "mosquitto" or (kind == "auto" and find_mosquitto()):
        return _MosquittoHandle(MosquittoProcess().start())
    return await EmbeddedBroker().start()
