#!/usr/bin/env python3
"""Modbus block reads per second across 500 simulated devices: the gateway's driver path beside a bare
pymodbus loop.

What is measured
    * baseline: one bare ``pymodbus.client.AsyncModbusTcpClient`` per endpoint, reading for every unit id
      the blocks ``drivers.blocks.plan_blocks`` gives its profile (same tables, addresses and counts),
      one request at a time per endpoint, all endpoints concurrently;
    * gateway: one ``ModbusDeviceDriver`` per device and one shared ``ModbusEndpoint`` per server (as
      ``EndpointPool`` gives the runtime), polled as the runtime polls them: one ``BusPoller`` per
      endpoint taking its 50 devices in turn (``poll_round``: each device's ``poll_once`` into a counting
      emit), the endpoints concurrently (``asyncio.gather``). That is block reads → ``DriverError``
      mapping → the profile's ``PollPlan`` (decode in place) → derived points → ``Reading`` objects →
      ``Envelope``.

Method
    The simulated devices are ``drivers.sim`` models (``PointsModel``, ``GeneratorModel`` for generator
    profiles) served by ``ModbusSimServer`` s on free ports of 127.0.0.1, E endpoints × U unit ids, like
    RS-485-to-TCP converters with a bus of devices behind each. The servers run in a child process by
    default (``--in-process`` puts them in this one), so their CPU does not come out of the client's;
    their register images are rebuilt at most every 0.25 s (``--refresh``), not on every request.
    A run is one warm-up round (connects; not timed, output checked), then R timed rounds: a round reads
    every block of every device once. Baseline and gateway alternate within each repeat, each with fresh
    connections; the servers live for the whole run. A run stops after its rounds or after
    --max-seconds, whichever comes first.

    Two figures per path: block reads/s (wall clock) and this process's CPU time per block read. On a
    2-core machine the server process can be the limit of the bare loop; CPU per read is not bounded by
    it. Block read time is the time between two consecutive completed reads on the same endpoint (the
    first read of each round is not counted): on a busy endpoint that is what one read costs end to
    end, measured the same way for both paths.

Validity (exit 1 with a one-line reason otherwise): every read succeeded with the asked count; the
servers saw exactly as many requests as the client made; the gateway's drivers counted no error, emitted
exactly the expected readings (points + derived + DSE alarms per poll, plus one ``online`` per device in
the warm-up) and, in the warm-up and once more after the timed rounds, every reading was quality good.

Run:  .venv/bin/python bench/modbus_poll.py [--quick] [--devices N] [--endpoints E] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import logging
import multiprocessing
import os
import pstats
import resource
import signal
import statistics
import sys
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from child import BenchError, child_reply, serve_commands
from machine import cpu_model, version_of  # bench/machine.py: run as a script, bench/ is on sys.path
from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.blocks import plan_blocks
from drivers.modbus_bus import BusPoller
from drivers.modbus_device import ModbusDeviceDriver
from drivers.profiles import ModbusProfile, ProfileError, ProfileLibrary
from drivers.sim import GeneratorModel, ModbusSimServer, PointsModel, RegisterModel
from drivers.sim.points import SimValue
from drivers.stats import StatsRegistry
from drivers.transports.modbus import Framer, ModbusEndpoint, PreparedRead
from gateway.model import Envelope, Quality, Reading, SystemClock
from gateway.runtime.broker import free_port

HOST = "127.0.0.1"
MAX_UNITS = 247  # Modbus unit ids 1..247
# One bus of 50 devices; the pattern repeats when an endpoint has more units.
MIX: tuple[tuple[str, int], ...] = (
    ("pressure_transmitter_s16", 24),  # septic / sewage tanks: the bulk of an estate's Modbus devices
    ("pressure_transmitter_float", 12),
    ("dse_gencomm", 6),  # standby generators
    ("comap_intelilite4", 4),
    ("gst_modbus_site_example", 2),  # fire panels through a converter
    ("notifier_demo_loop1", 2),
)
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 10.0
WARMUP_TIMEOUT = 30.0
POLL_INTERVAL = 5.0  # the driver's configured interval; poll_once does not use it
OFFLINE_AFTER = 3


# -- layout and simulated devices -----------------------------------------------------------------


def _spread(mix: Sequence[tuple[str, int]]) -> list[str]:
    """The mix as one bus, each profile spread evenly over it (not 24 transmitters, then 12 ...)."""
    slots = sorted(((k + 0.5) / n, i, name) for i, (name, n) in enumerate(mix) for k in range(n))
    return [name for _, _, name in slots]


@dataclass(frozen=True)
class Device:
    endpoint: int  # index into the endpoints (servers)
    unit: int
    profile: str

    @property
    def estate(self) -> str:
        return f"e{self.endpoint}"

    @property
    def name(self) -> str:
        return f"{self.profile}-{self.unit:03d}"


@dataclass(frozen=True)
class Layout:
    endpoints: int
    devices: tuple[Device, ...]

    @classmethod
    def build(cls, devices: int, endpoints: int) -> Layout:
        pattern = _spread(MIX)
        out = [
            Device(d % endpoints, d // endpoints + 1, pattern[(d // endpoints) % len(pattern)])
            for d in range(devices)
        ]
        return cls(endpoints, tuple(sorted(out, key=lambda x: (x.endpoint, x.unit))))

    def on(self, endpoint: int) -> list[Device]:
        return [d for d in self.devices if d.endpoint == endpoint]

    def units(self) -> list[list[tuple[int, str]]]:
        """Picklable form for the server process: per endpoint, (unit id, profile name)."""
        return [[(d.unit, d.profile) for d in self.on(e)] for e in range(self.endpoints)]


def modbus_profile(library: ProfileLibrary, name: str) -> ModbusProfile:
    try:
        profile = library.get(name)
    except ProfileError as exc:
        raise BenchError(f"profile {name!r}: {exc}") from exc
    if not isinstance(profile, ModbusProfile):
        raise BenchError(f"profile {name!r} is not a Modbus profile")
    return profile


def plausible_values(profile: ModbusProfile) -> dict[str, SimValue]:
    """Values a healthy device reports: the lowest enum code (normal, stopped, ...), no bit set,
    1 decimal place, kPa for the transmitters' unit register; numbers the profile decodes as good."""
    decimals = {p.decimals_from for p in profile.points if p.decimals_from}
    values: dict[str, SimValue] = {}
    for point in profile.points:
        if point.name in decimals:
            values[point.name] = 1
        elif point.bit is not None:
            values[point.name] = False
        elif point.enum:
            values[point.name] = "kPa" if point.name == "unit" else point.enum[min(point.enum)]
        else:
            values[point.name] = 20.5 if point.type == "float32" else 12
    return values


def sim_model(profile: ModbusProfile, refresh: float) -> RegisterModel:
    """As `drivers.sim.host.SimulationHost` does: the generator state machine for generators."""
    model: RegisterModel = (
        GeneratorModel(profile)
        if profile.family.value == "generator"
        else PointsModel(profile, plausible_values(profile))
    )
    return CachedImage(model, refresh) if refresh > 0 else model


class CachedImage:
    """A RegisterModel whose register image is rebuilt at most every `refresh` seconds.

    The sim models rebuild the whole image (encoding every point; the generator also steps its state
    machine) on every request: for a generator that is 7 times per poll. The server process is the
    limit on 2 cores, so the bench spares it that work; the values stay the model's.
    """

    def __init__(self, model: RegisterModel, refresh: float) -> None:
        self.model = model
        self.fault = model.fault
        self.refresh = refresh
        self._image: dict[int, int] = {}
        self._expires = 0.0

    def registers(self) -> dict[int, int]:
        now = time.monotonic()
        if now >= self._expires:
            self._image = self.model.registers()
            self._expires = now + self.refresh
        return self._image

    def write(self, address: int, values: list[int]) -> int | None:
        self._expires = 0.0
        return self.model.write(address, values)


def readings_per_poll(profile: ModbusProfile) -> int:
    """Items one complete poll of a healthy device emits (without the one-off `online`)."""
    nibbles = len(profile.alarm_nibbles.names) if profile.alarm_nibbles else 0
    return len(profile.points) + len(profile.derived) + nibbles


# -- simulated servers: in this process or in a child ---------------------------------------------


@dataclass(frozen=True)
class ServerStats:
    requests: int
    cpu_seconds: float
    peak_rss_mib: float


class Servers(Protocol):
    ports: list[int]
    where: str

    async def start(self) -> None: ...

    async def stats(self) -> ServerStats: ...

    async def stop(self) -> None: ...


class ServerGroup:
    """The E ModbusSimServers, started and stopped together (runs in whatever process owns it)."""

    def __init__(self, units: list[list[tuple[int, str]]], framer: Framer, refresh: float) -> None:
        library = ProfileLibrary()
        self.units = units
        self.framer = framer
        self.models: list[dict[int, RegisterModel]] = [
            {unit: sim_model(modbus_profile(library, name), refresh) for unit, name in bus} for bus in units
        ]
        self.servers: list[ModbusSimServer] = []
        self.ports: list[int] = []

    async def start(self) -> None:
        for models in self.models:
            for attempt in range(5):  # a free port can be taken between free_port() and bind
                server = ModbusSimServer(HOST, free_port(), dict(models), self.framer)
                try:
                    await server.start()
                except OSError:
                    if attempt == 4:
                        raise
                    continue
                self.servers.append(server)
                self.ports.append(server.port)
                break

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.servers)

    async def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):  # stop the others whatever one of them does
                await server.stop()
        self.servers.clear()


class InProcessServers:
    where = "in this process"

    def __init__(self, units: list[list[tuple[int, str]]], framer: Framer, refresh: float) -> None:
        self.group = ServerGroup(units, framer, refresh)
        self.ports: list[int] = []

    async def start(self) -> None:
        await self.group.start()
        self.ports = self.group.ports

    async def stats(self) -> ServerStats:
        return ServerStats(self.group.requests, 0.0, 0.0)  # its CPU is counted in the client's

    async def stop(self) -> None:
        await self.group.stop()


def _server_main(
    units: list[list[tuple[int, str]]], framer: Framer, refresh: float, conn: Connection
) -> None:
    """Child process: start the servers, report the ports, answer `stats` until `stop` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(units, framer, refresh, conn))
    finally:
        conn.close()


def _own_stats(group: ServerGroup) -> tuple[int, float, float]:
    """A plain tuple: a class defined in this script pickles as __mp_main__.X, unknown to the parent."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return group.requests, time.process_time(), rss


async def _serve(
    units: list[list[tuple[int, str]]], framer: Framer, refresh: float, conn: Connection
) -> None:
    group = ServerGroup(units, framer, refresh)
    try:
        try:
            await group.start()
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        conn.send(("ready", group.ports))
        await serve_commands(conn, {"stats": lambda: ("stats", _own_stats(group))})
    finally:
        await group.stop()
        with contextlib.suppress(OSError):
            conn.send(("stopped", None))


class ChildServers:
    """The ServerGroup in a spawned child process, driven over a pipe."""

    where = "in a child process"

    def __init__(self, units: list[list[tuple[int, str]]], framer: Framer, refresh: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(
            target=_server_main,
            args=(units, framer, refresh, child_conn),
            name="bench-modbus-servers",
            daemon=True,
        )
        self._child_conn = child_conn
        self.ports: list[int] = []

    def _reply(self, timeout: float, expect: str) -> Any:
        return child_reply(self.conn, self.proc, "server process", timeout, expect)

    async def start(self) -> None:
        self.proc.start()
        self._child_conn.close()
        self.ports = list(await asyncio.to_thread(self._reply, SERVER_START_TIMEOUT, "ready"))

    async def stats(self) -> ServerStats:
        self.conn.send("stats")
        requests, cpu, rss = await asyncio.to_thread(self._reply, SERVER_STOP_TIMEOUT, "stats")
        return ServerStats(int(requests), float(cpu), float(rss))

    async def stop(self) -> None:
        """Ask the child to stop its servers; terminate it (by its own handle) if it does not."""
        if self.proc.pid is None:
            return
        with contextlib.suppress(OSError, BenchError):
            self.conn.send("stop")
            await asyncio.to_thread(self._reply, SERVER_STOP_TIMEOUT, "stopped")
        await asyncio.to_thread(self.proc.join, SERVER_STOP_TIMEOUT)
        if self.proc.is_alive():
            self.proc.terminate()
            await asyncio.to_thread(self.proc.join, SERVER_STOP_TIMEOUT)
        self.conn.close()


# -- one run: shared measurement bookkeeping ------------------------------------------------------


@dataclass
class Run:
    """One timed run of one path."""

    path: str
    rounds: int = 0
    seconds: float = 0.0  # sum of the timed rounds
    cpu_seconds: float = 0.0  # this process, during the timed rounds
    server_cpu_seconds: float = 0.0
    reads: int = 0  # completed block reads in the timed rounds
    polls: int = 0
    readings: int = 0
    intervals: array[float] = field(default_factory=lambda: array("d"))  # block read times, seconds
    round_seconds: list[float] = field(default_factory=list)
    setup_kib: float = 0.0  # tracemalloc: memory still held after setup and warm-up
    capped: bool = False  # stopped by --max-seconds before all rounds

    @property
    def reads_per_s(self) -> float:
        return self.reads / self.seconds

    @property
    def polls_per_s(self) -> float:
        return self.polls / self.seconds

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds


@dataclass(frozen=True)
class Settings:
    layout: Layout
    framer: Framer
    rounds: int
    max_seconds: float
    timeout: float
    library: ProfileLibrary  # loaded once: YAML parsing is not part of any run
    profiler: cProfile.Profile | None = None  # --profile: enabled during the timed rounds only

    @property
    def round_limit(self) -> float:
        """A round that takes longer than this has hung: every read would have timed out by then."""
        per_bus = max(len(self.layout.on(e)) for e in range(self.layout.endpoints))
        return 30.0 + 2 * self.timeout * per_bus


async def _timed_rounds(settings: Settings, run: Run, one_round: Callable[[], Awaitable[None]]) -> None:
    """Run up to `rounds` rounds, stop early after --max-seconds; time each round and the CPU."""
    gc.collect()
    if settings.profiler is not None:
        settings.profiler.enable()
    cpu = time.process_time()
    deadline = time.perf_counter() + settings.max_seconds
    for _ in range(settings.rounds):
        started = time.perf_counter()
        try:
            async with asyncio.timeout(settings.round_limit):
                await one_round()
        except TimeoutError as exc:
            raise BenchError(f"{run.path}: a round did not finish within {settings.round_limit:g}s") from exc
        elapsed = time.perf_counter() - started
        run.round_seconds.append(elapsed)
        run.seconds += elapsed
        run.rounds += 1
        if time.perf_counter() > deadline and run.rounds < settings.rounds:
            run.capped = True
            break
    run.cpu_seconds = time.process_time() - cpu
    if settings.profiler is not None:
        settings.profiler.disable()


async def _untimed(path: str, what: str, rounds: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(WARMUP_TIMEOUT):
            await rounds
    except TimeoutError as exc:
        raise BenchError(f"{path}: the {what} did not finish within {WARMUP_TIMEOUT:g}s") from exc


def _traced_kib(before: int) -> float:
    current, _peak = tracemalloc.get_traced_memory()
    return (current - before) / 1024


# -- baseline: bare pymodbus ----------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    unit: int
    table: str
    address: int
    count: int


def _client(port: int, settings: Settings) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient(
        HOST,
        port=port,
        framer=FramerType.RTU if settings.framer == "rtu" else FramerType.SOCKET,
        timeout=settings.timeout,
        retries=0,
        reconnect_delay=0,
    )


class BareEndpoint:
    """One bare client and the jobs of its bus, read one after the other."""

    def __init__(self, client: AsyncModbusTcpClient, jobs: list[Job]) -> None:
        self.client = client
        self.calls: list[tuple[Callable[..., Awaitable[Any]], Job]] = [
            (self._call(job.table), job) for job in jobs
        ]
        self.intervals: array[float] = array("d")  # floats unboxed: the bookkeeping stays out of the RSS
        self.reads = 0
        self.failures: list[str] = []

    def _call(self, table: str) -> Callable[..., Awaitable[Any]]:
        c = self.client
        calls: dict[str, Callable[..., Awaitable[Any]]] = {
            "holding": c.read_holding_registers,
            "input": c.read_input_registers,
            "coil": c.read_coils,
            "discrete": c.read_discrete_inputs,
        }
        return calls[table]

    async def one_round(self, record: bool) -> None:
        last = 0.0  # the first read of a round has no predecessor: not counted
        intervals = self.intervals
        for call, job in self.calls:
            reply = await call(job.address, count=job.count, device_id=job.unit)
            now = time.perf_counter()
            if record and last:
                intervals.append(now - last)
            last = now
            if job.table in ("coil", "discrete"):  # bits come padded to whole bytes
                ok = not reply.isError() and len(reply.bits) >= job.count
            else:
                ok = not reply.isError() and len(reply.registers) == job.count
            if not ok:
                self.failures.append(f"unit {job.unit} {job.table}@{job.address}+{job.count}: {reply}")
            else:
                self.reads += 1


def bare_jobs(layout: Layout, endpoint: int, library: ProfileLibrary) -> list[Job]:
    return [
        Job(d.unit, b.table, b.address, b.count)
        for d in layout.on(endpoint)
        for b in plan_blocks(modbus_profile(library, d.profile))
    ]


async def run_bare(settings: Settings, ports: list[int], servers: Servers) -> Run:
    run = Run("bare pymodbus")
    library = settings.library
    traced = tracemalloc.get_traced_memory()[0]
    buses = [
        BareEndpoint(_client(port, settings), bare_jobs(settings.layout, e, library))
        for e, port in enumerate(ports)
    ]
    requests_before = (await servers.stats()).requests
    try:
        for bus in buses:
            if not await asyncio.wait_for(bus.client.connect(), settings.timeout + 5):
                raise BenchError(f"bare client could not connect to {HOST}:{bus.client.comm_params.port}")
        await _untimed(run.path, "warm-up", asyncio.gather(*(bus.one_round(False) for bus in buses)))
        run.setup_kib = _traced_kib(traced)
        tracemalloc.stop()
        warm_reads = sum(bus.reads for bus in buses)
        server_cpu = (await servers.stats()).cpu_seconds

        async def one_round() -> None:
            await asyncio.gather(*(bus.one_round(True) for bus in buses))

        await _timed_rounds(settings, run, one_round)
        server = await servers.stats()
    finally:
        for bus in buses:
            bus.client.close()
    failures = [f for bus in buses for f in bus.failures]
    if failures:
        raise BenchError(f"bare pymodbus: {len(failures)} failed reads, first: {failures[0]}")
    run.server_cpu_seconds = server.cpu_seconds - server_cpu
    run.reads = sum(bus.reads for bus in buses) - warm_reads
    run.polls = run.rounds * len(settings.layout.devices)
    run.intervals = array("d", (i for bus in buses for i in bus.intervals))
    expected = run.rounds * sum(len(bus.calls) for bus in buses)
    if run.reads != expected:
        raise BenchError(f"bare pymodbus: {run.reads} reads in {run.rounds} rounds, expected {expected}")
    _check_server_requests(run.path, warm_reads + run.reads, server.requests - requests_before)
    return run


def _check_server_requests(path: str, client_reads: int, server_requests: int) -> None:
    if client_reads != server_requests:
        raise BenchError(f"{path}: the client completed {client_reads} reads, servers saw {server_requests}")


# -- gateway: ModbusDeviceDriver.poll_once --------------------------------------------------------


class TimedEndpoint(ModbusEndpoint):
    """The real ModbusEndpoint; notes when each read completes (the only addition)."""

    def __init__(self, host: str, port: int, timeout: float, framer: Framer) -> None:
        super().__init__(host, port, timeout, framer)
        self.intervals: array[float] = array("d")
        self.reads = 0
        self.last = 0.0
        self.record = False

    async def read_prepared(self, read: PreparedRead) -> list[int] | list[bool]:
        words = await super().read_prepared(read)
        now = time.perf_counter()
        if self.record and self.last:
            self.intervals.append(now - self.last)
        self.last = now
        self.reads += 1
        return words


class CountingEmit:
    """The emit of the timed rounds: counts envelopes and items, nothing else."""

    def __init__(self) -> None:
        self.envelopes = 0
        self.items = 0

    async def __call__(self, envelope: Envelope) -> None:
        self.envelopes += 1
        self.items += len(envelope.items)


class CheckingEmit(CountingEmit):
    """The emit of the untimed check rounds: also notes every reading that is not quality good."""

    def __init__(self) -> None:
        super().__init__()
        self.not_good: list[str] = []

    async def __call__(self, envelope: Envelope) -> None:
        await super().__call__(envelope)
        for item in envelope.items:
            if isinstance(item, Reading) and item.quality is not Quality.GOOD:
                self.not_good.append(f"{item.estate}/{item.device}.{item.point}={item.value!r}")


def build_drivers(
    settings: Settings, ports: list[int], library: ProfileLibrary
) -> tuple[list[TimedEndpoint], list[ModbusDeviceDriver], StatsRegistry]:
    """As `gateway.runtime.app.App` wires them: one endpoint per host:port, one driver per device."""
    endpoints = [TimedEndpoint(HOST, port, settings.timeout, settings.framer) for port in ports]
    stats, clock = StatsRegistry(), SystemClock()
    drivers = [
        ModbusDeviceDriver(
            d.estate,
            d.name,
            modbus_profile(library, d.profile),
            endpoints[d.endpoint],
            d.unit,
            POLL_INTERVAL,
            OFFLINE_AFTER,
            stats.for_device(d.estate, d.name),
            clock,
        )
        for d in settings.layout.devices
    ]
    return endpoints, drivers, stats


def _check_driver_errors(stats: StatsRegistry, what: str) -> None:
    errors: Counter[str] = Counter()
    for _, device_stats in stats.items():
        errors.update(device_stats.errors)
    if errors:
        raise BenchError(f"gateway: driver errors by reason up to {what}: {dict(errors)}")


def _check_emit(path: str, emit: CheckingEmit, expected: int, what: str) -> None:
    if emit.not_good:
        raise BenchError(
            f"{path}: {len(emit.not_good)} readings not good in {what}, first: {emit.not_good[0]}"
        )
    if emit.items != expected:
        raise BenchError(f"{path}: {emit.items} readings in {what}, expected {expected}")


async def run_gateway(settings: Settings, ports: list[int], servers: Servers) -> Run:
    run = Run("gateway BusPoller")
    library = settings.library
    traced = tracemalloc.get_traced_memory()[0]
    endpoints, drivers, stats = build_drivers(settings, ports, library)
    buses = [BusPoller([d for d in drivers if d.endpoint is e], SystemClock()) for e in endpoints]
    per_round = sum(readings_per_poll(d.profile) for d in drivers)
    blocks = sum(len(d.blocks) for d in drivers)
    requests_before = (await servers.stats()).requests
    try:
        warm = CheckingEmit()
        # connects every endpoint; each device emits `online` once
        await _untimed(run.path, "warm-up", asyncio.gather(*(b.poll_round(warm) for b in buses)))
        run.setup_kib = _traced_kib(traced)
        tracemalloc.stop()
        _check_driver_errors(stats, "the warm-up round")
        _check_emit(run.path, warm, per_round + len(drivers), "the warm-up round")
        warm_reads = sum(e.reads for e in endpoints)
        server_cpu = (await servers.stats()).cpu_seconds
        emit = CountingEmit()
        for endpoint in endpoints:
            endpoint.record = True

        async def one_round() -> None:
            for endpoint in endpoints:
                endpoint.last = 0.0  # the first read of a round has no predecessor: not counted
            await asyncio.gather(*(b.poll_round(emit) for b in buses))

        await _timed_rounds(settings, run, one_round)
        server = await servers.stats()
        for endpoint in endpoints:
            endpoint.record = False
        check = CheckingEmit()
        await _untimed(run.path, "check round", asyncio.gather(*(b.poll_round(check) for b in buses)))
        _check_driver_errors(stats, "the timed rounds")
        _check_emit(run.path, check, per_round, "the check round after the timed rounds")
        final = await servers.stats()
    finally:
        for endpoint in endpoints:
            endpoint.close()
    run.server_cpu_seconds = server.cpu_seconds - server_cpu
    run.reads = sum(e.reads for e in endpoints) - warm_reads - blocks  # less the check round's
    run.polls = run.rounds * len(drivers)
    run.readings = emit.items
    run.intervals = array("d", (i for e in endpoints for i in e.intervals))
    if run.reads != run.rounds * blocks:
        raise BenchError(f"gateway: {run.reads} reads in {run.rounds} rounds, expected {run.rounds * blocks}")
    if emit.items != run.rounds * per_round or emit.envelopes != run.polls:
        raise BenchError(
            f"gateway: {emit.items} readings in {emit.envelopes} envelopes, "
            f"expected {run.rounds * per_round} in {run.polls}"
        )
    _check_server_requests(run.path, warm_reads + run.reads + blocks, final.requests - requests_before)
    return run


# -- report ---------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _spread_of(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _row(label: str, values: list[float], unit: str, decimals: int = 0) -> str:
    med, lo, hi = _spread_of(values)
    f = f">11,.{decimals}f"
    return f"{label:<26}{med:{f}}{lo:{f}}{hi:{f}}  {unit}"


def _listing(values: Sequence[object], fmt: str = "{}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def describe_workload(settings: Settings, library: ProfileLibrary) -> list[str]:
    layout = settings.layout
    counts: dict[str, int] = {}
    for d in layout.devices:
        counts[d.profile] = counts.get(d.profile, 0) + 1
    mix = []
    for name, n in counts.items():
        profile = modbus_profile(library, name)
        blocks = len(plan_blocks(profile))
        mix.append(
            f"{n} {name} ({blocks} block{'s' if blocks > 1 else ''}, {readings_per_poll(profile)} readings)"
        )
    blocks = sum(len(plan_blocks(modbus_profile(library, d.profile))) for d in layout.devices)
    readings = sum(readings_per_poll(modbus_profile(library, d.profile)) for d in layout.devices)
    framing = "Modbus TCP" if settings.framer == "socket" else "RTU over TCP"
    per = max(len(layout.on(e)) for e in range(layout.endpoints))
    return [
        f"workload: {len(layout.devices)} devices = {layout.endpoints} endpoints x up to {per} unit ids "
        f"({framing}, {HOST}); a round = {blocks:,} block reads, {readings:,} readings",
        f"  mix: {'; '.join(mix)}",
    ]


def print_report(settings: Settings, runs: list[tuple[Run, Run]], where: str) -> None:
    library = settings.library
    bare = [b for b, _ in runs]
    gw = [g for _, g in runs]
    print()
    print("machine")
    for key, value in (
        ("CPU", cpu_model()),
        ("cores", str(os.cpu_count())),
        ("Python", sys.version.split()[0]),
        ("pymodbus", version_of("pymodbus")),
    ):
        print(f"  {key:<10}{value}")
    print()
    for line in describe_workload(settings, library):
        print(line)
    rounds = _listing([r.rounds for r in bare + gw])
    print(f"  servers {where}; {len(runs)} repeat(s); timed rounds per run: {rounds}")
    print()
    print(f"{'':<26}{'median':>11}{'min':>11}{'max':>11}")
    print(_row("bare pymodbus loop", [r.reads_per_s for r in bare], "block reads/s"))
    print(_row("gateway BusPoller", [r.reads_per_s for r in gw], "block reads/s"))
    ratio = statistics.median(r.reads_per_s for r in gw) / statistics.median(r.reads_per_s for r in bare)
    print(f"{'  ratio gateway/bare':<26}{ratio:>11.1%}")
    print(_row("bare pymodbus loop", [r.polls_per_s for r in bare], "devices polled/s"))
    print(_row("gateway BusPoller", [r.polls_per_s for r in gw], "devices polled/s"))
    print(_row("gateway BusPoller", [r.readings_per_s for r in gw], "readings decoded/s"))
    bare_cpu = [r.cpu_seconds / r.reads * 1e6 for r in bare]
    gw_cpu = [r.cpu_seconds / r.reads * 1e6 for r in gw]
    whose = "client" if where != InProcessServers.where else "client + server"
    print(_row("bare pymodbus loop", bare_cpu, f"us {whose} CPU per block read", decimals=1))
    print(_row("gateway BusPoller", gw_cpu, f"us {whose} CPU per block read", decimals=1))
    cost = statistics.median(gw_cpu) / statistics.median(bare_cpu)
    print(f"{'  ratio gateway/bare':<26}{cost:>11.2f}x")
    server_bound = [r.server_cpu_seconds / r.seconds for r in bare if r.server_cpu_seconds / r.seconds > 0.9]
    if server_bound:
        print(
            f"  note: in {len(server_bound)} of {len(bare)} bare runs the server process was > 90 % busy:\n"
            "  there the bare rate is the server's limit; CPU per block read is the fairer comparison"
        )
    print()
    print("block read time (between consecutive completed reads on one endpoint; a round's first excluded)")
    for label, group in (("bare", bare), ("gateway", gw)):
        values = [i * 1000 for r in group for i in r.intervals]
        if not values:
            print(f"  {label:<9}no endpoint had two reads in a round")
            continue
        print(
            f"  {label:<9}p50 {_pct(values, 0.5):.3f} ms   p99 {_pct(values, 0.99):.3f} ms   "
            f"max {max(values):.2f} ms   ({len(values):,} reads)"
        )
    devices = len(settings.layout.devices)
    for label, group in (("bare", bare), ("gateway", gw)):
        values = [s * 1000 for r in group for s in r.round_seconds]
        print(
            f"  round, all {devices} devices once: {label:<8}p50 {_pct(values, 0.5):,.0f} ms   "
            f"p99 {_pct(values, 0.99):,.0f} ms"
        )
    print()
    print_info(runs, where)


def print_info(runs: list[tuple[Run, Run]], where: str) -> None:
    bare = [b for b, _ in runs]
    gw = [g for _, g in runs]
    print("info")
    print(
        "  client CPU / wall (this process): "
        f"bare {_listing([r.cpu_seconds / r.seconds for r in bare], '{:.0%}')}; "
        f"gateway {_listing([r.cpu_seconds / r.seconds for r in gw], '{:.0%}')}"
    )
    if where != InProcessServers.where:
        print(
            "  server CPU / wall (child process): "
            f"bare {_listing([r.server_cpu_seconds / r.seconds for r in bare], '{:.0%}')}; "
            f"gateway {_listing([r.server_cpu_seconds / r.seconds for r in gw], '{:.0%}')}"
        )
        per_request = statistics.median(r.server_cpu_seconds / r.reads * 1e6 for r in bare + gw)
        print(f"  server CPU per request: {per_request:.0f} us (median of all runs)")
    capped = [r.path for r in bare + gw if r.capped]
    if capped:
        print(f"  stopped by --max-seconds before all rounds: {len(capped)} run(s)")
    print("  checked: every read succeeded, server request counts = client reads, readings as expected")
    print(
        "  memory held after setup + warm-up (tracemalloc): "
        f"bare {statistics.median(r.setup_kib for r in bare):,.0f} KiB; "
        f"gateway {statistics.median(r.setup_kib for r in gw):,.0f} KiB"
    )


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="30 rounds, 2 repeats (about 12 s)")
    parser.add_argument("--devices", type=int, default=500, help="simulated devices (default 500)")
    parser.add_argument("--endpoints", type=int, default=10, help="servers the devices share (default 10)")
    parser.add_argument("--rounds", type=int, help="timed rounds per run (default 60; --quick 30)")
    parser.add_argument("--repeats", type=int, help="baseline/gateway pairs (default 5; --quick 2)")
    parser.add_argument("--max-seconds", type=float, help="cap per run (default 60; --quick 15)")
    parser.add_argument("--timeout", type=float, default=1.0, help="reply timeout, s (default 1.0)")
    parser.add_argument("--framer", choices=["socket", "rtu"], default="socket", help="default socket")
    parser.add_argument("--in-process", action="store_true", help="run the servers in this process")
    parser.add_argument(
        "--refresh",
        type=float,
        default=0.25,
        help="sim register images rebuilt at most every REFRESH s (default 0.25; 0: every request)",
    )
    parser.add_argument(
        "--profile", type=int, metavar="N", help="instead of figures: cProfile one run of each, top N"
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (30 if args.quick else 60)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.max_seconds = args.max_seconds or (15.0 if args.quick else 60.0)
    if args.devices < 1 or args.endpoints < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error("--devices, --endpoints, --rounds and --repeats must be at least 1")
    if args.devices > args.endpoints * MAX_UNITS:
        parser.error(f"at most {MAX_UNITS} unit ids per endpoint: raise --endpoints")
    if args.endpoints > args.devices:
        parser.error("--endpoints must not exceed --devices")
    return args


PROFILE_GROUPS = (
    ("/pymodbus/", "pymodbus client"),
    ("/asyncio/", "asyncio (event loop, tasks, futures, locks, wait_for)"),
    ("/drivers/", "drivers/ (endpoint, driver, decode, derive)"),
    ("/gateway/", "gateway/ (Reading, Envelope, clock)"),
    ("modbus_poll.py", "this script (rounds, counting emit)"),
    ("~", "C functions (socket send/recv, epoll, builtins)"),
    ("<string>", "generated dataclass __init__ (Reading, Envelope, ...)"),
)


def _group(filename: str) -> str:
    return next((label for key, label in PROFILE_GROUPS if key in filename), "other Python")


def print_profile(profiler: cProfile.Profile, top: int, reads: int) -> None:
    """Own time per area of code (per block read), then the top functions by own and by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    groups: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        groups[_group(filename)] = groups.get(_group(filename), 0.0) + tottime
    total = sum(groups.values())
    print(f"  own time by area, per block read ({reads:,} reads; cProfile inflates Python-heavy code):")
    for label, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"    {seconds / reads * 1e6:7.1f} us  {seconds / total:5.1%}  {label}")
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        out.write(f"\n  top {top} by {key}\n")
        stats.sort_stats(key).print_stats(top)
    print(out.getvalue())


async def run(args: argparse.Namespace) -> None:
    layout = Layout.build(args.devices, args.endpoints)
    library = ProfileLibrary()
    for name, _ in MIX:
        modbus_profile(library, name)
    settings = Settings(layout, args.framer, args.rounds, args.max_seconds, args.timeout, library)
    kind = InProcessServers if args.in_process else ChildServers
    servers: Servers = kind(layout.units(), args.framer, args.refresh)
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cancels the run like Ctrl-C does: `finally` stops the servers
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await servers.start()
        print(f"{len(servers.ports)} Modbus servers {servers.where} on {HOST}, ports {_ports(servers.ports)}")
        if args.profile:
            for label, path in (("bare", run_bare), ("gateway", run_gateway)):
                profiler = cProfile.Profile()
                tracemalloc.start()
                done = await path(replace(settings, profiler=profiler), servers.ports, servers)
                print(
                    f"\n{label}: {done.reads_per_s:,.0f} block reads/s under cProfile ({done.rounds} rounds)"
                )
                print_profile(profiler, args.profile, done.reads)
            return
        runs: list[tuple[Run, Run]] = []
        rss_before = current_rss_mib()
        for r in range(args.repeats):
            tracemalloc.start()
            bare = await run_bare(settings, servers.ports, servers)
            print(f"  repeat {r + 1}: bare {bare.reads_per_s:>9,.0f} block reads/s", end="", flush=True)
            tracemalloc.start()
            gateway = await run_gateway(settings, servers.ports, servers)
            print(f"   gateway {gateway.reads_per_s:>9,.0f} block reads/s", flush=True)
            runs.append((bare, gateway))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the report's sorting
        print_report(settings, runs, servers.where)
        server_rss = (await servers.stats()).peak_rss_mib
        child = f", server process {server_rss:,.1f} MiB" if server_rss else " (servers included)"
        print(f"  peak RSS: this process {peak:,.1f} MiB ({rss_before:,.1f} MiB before the first run){child}")
    finally:
        await servers.stop()


def current_rss_mib() -> float:
    """Resident set size now (Linux /proc); the peak so far where /proc is missing."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return resident * os.sysconf("SC_PAGE_SIZE") / 2**20


def _ports(ports: list[int]) -> str:
    return _listing(ports[:3]) + (f", ... ({len(ports)})" if len(ports) > 3 else "")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except (BenchError, ModbusException, OSError) as exc:
        reason = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        print(f"modbus_poll: FAILED: {reason}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("modbus_poll: interrupted (servers stopped)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
