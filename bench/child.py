"""What the benchmarks share: their error, and the pipe protocol of a helper child process.

A child (servers, receivers) answers on a multiprocessing pipe with `(kind, value)` tuples: "ready",
"stats", ... or "error" with a message. Run as scripts, the benchmarks import this with bench/ on sys.path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any


class BenchError(RuntimeError):
    """The benchmark could not produce a valid figure."""


def child_reply(conn: Connection, proc: BaseProcess, who: str, timeout: float, expect: str) -> Any:
    """The child's next message, which must be `expect`; anything else is a BenchError naming `who`."""
    if not conn.poll(timeout):
        raise BenchError(f"{who}: no {expect!r} reply within {timeout:g}s")
    try:
        kind, value = conn.recv()
    except EOFError as exc:
        raise BenchError(f"{who} died (exit code {proc.exitcode})") from exc
    if kind == "error":
        raise BenchError(f"{who}: {value}")
    if kind != expect:
        raise BenchError(f"{who}: expected {expect!r}, got {kind!r}")
    return value


async def serve_commands(conn: Connection, answers: dict[str, Callable[[], tuple[str, Any]]]) -> None:
    """In the child: answer the parent's commands until "stop" or the parent is gone (EOF). Each
    command's function returns the (kind, value) to send back. The pipe is watched by the event loop,
    so the child's servers keep running between commands."""
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), wake.set)
    try:
        while True:
            await wake.wait()
            wake.clear()
            while conn.poll():
                try:
                    command = conn.recv()
                except EOFError:  # the parent is gone
                    return
                if command == "stop":
                    return
                if command in answers:
                    conn.send(answers[command]())
    finally:
        loop.remove_reader(conn.fileno())


def close_child(conn: Connection, proc: BaseProcess) -> None:
    """Close the pipe and wait for the child (it exits on EOF), terminating it after 5 s."""
    conn.close()
    proc.join(5)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
