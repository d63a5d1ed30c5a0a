"""A paced MQTT publisher in its own (spawned) process, shared by the bench suite's measurements.

Each payload may hold the placeholder ``{t}``: the publisher replaces it with its wall clock
(``time.time()``, epoch s) just before the message goes out, so a receiver on the same machine can
measure publish → arrival. ``rate`` 0 publishes as fast as paho allows.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as paho
from child import BenchError, close_child

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class PacedResult:
    sent: int
    seconds: float  # first publish → last PUBACK
    late: float  # how far the last publish fell behind its schedule, s
    started: float = 0.0  # wall clock (time.time()) of the first publish

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def _publish(
    port: int, client_id: str, messages: list[tuple[str, str]], rate: float, qos: int
) -> PacedResult:
    connected, done = threading.Event(), threading.Event()
    acked = 0

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            connected.set()

    def on_publish(client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_connect, client.on_publish = on_connect, on_publish
    client.connect(HOST, port)
    client.loop_start()
    try:
        if not connected.wait(CONNECT_TIMEOUT):
            raise BenchError(f"publisher could not connect to {HOST}:{port}")
        start, started = time.perf_counter(), time.time()
        late = 0.0
        for i, (topic, payload) in enumerate(messages):
            if rate > 0:
                due = start + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    late = -wait
            body = payload.replace("{t}", repr(time.time())) if "{t}" in payload else payload
            info = client.publish(topic, body, qos=qos)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise BenchError(f"publish failed: {paho.error_string(info.rc)}")
        if qos == 0:
            done.set()
        if not done.wait(60 + len(messages) / 1000):
            raise BenchError(f"publisher: only {acked}/{len(messages)} PUBACKs")
        return PacedResult(len(messages), time.perf_counter() - start, late, started)
    finally:
        client.disconnect()
        client.loop_stop()


def _main(
    port: int, client_id: str, messages: list[tuple[str, str]], rate: float, qos: int, conn: Connection
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    result: tuple[str, Any]
    try:
        result = ("ok", _publish(port, client_id, messages, rate, qos))
    except Exception as exc:  # reported to the parent
        result = ("error", f"{type(exc).__name__}: {exc}")
    with contextlib.suppress(OSError):
        conn.send(result)
    conn.close()


class PacedPublisher:
    """Start with `start()`; `result()` waits for the child to finish (blocking: call it in a thread)."""

    def __init__(
        self, port: int, client_id: str, messages: list[tuple[str, str]], rate: float, qos: int = 1
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=_main, args=(port, client_id, messages, rate, qos, child_conn), name="bench-paced-pub"
        )
        self._child_conn = child_conn
        self.expected = len(messages) / rate if rate > 0 else len(messages) / 5000

    def start(self) -> None:
        self.proc.start()
        self._child_conn.close()

    def result(self) -> PacedResult:
        timeout = self.expected + 120
        try:
            if not self.conn.poll(timeout):
                raise BenchError(f"publisher did not finish within {timeout:.0f}s")
            status, value = self.conn.recv()
        except EOFError:
            status, value = "error", f"publisher died (exit code {self.proc.exitcode})"
        finally:
            self.close()
        if status != "ok":
            raise BenchError(f"publisher: {value}")
        assert isinstance(value, PacedResult)
        return value

    def close(self) -> None:
        close_child(self.conn, self.proc)
