"""`estate-gateway` command line: run, check-config, simulate, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from drivers.sim.host import SimulationHost
from drivers.sim.scenario import Step, load_scenario, play
from gateway.auth import AccountError, Accounts
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.config.loader import load_config_with_lines
from gateway.escalation.checks import escalation_warnings
from gateway.incidents import alarm_state
from gateway.runtime import heap, memtrace
from gateway.runtime.app import App
from gateway.runtime.broker import EmbeddedBroker, free_port, start_local_broker
from gateway.runtime.build import bind_devices
from gateway.runtime.user_cli import add_user_parser, cmd_user

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "demo-estate.yaml"
log = logging.getLogger("estate-gateway")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # pymodbus logs every client timeout as an error; our drivers log once per outage with context.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


# -- check-config ---------------------------------------------------------------------------------
def cmd_check_config(path: str) -> int:
    try:
        config, lines = load_config_with_lines(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    _, issues = bind_devices(config, Path(path).name, lines)
    if issues:
        for issue in issues:
            print(issue, file=sys.stderr)
        return 2
    for warning in escalation_warnings(config):
        print(f"{path}: warning: {warning}", file=sys.stderr)
    devices = sum(len(e.devices) for e in config.estates)
    print(f"{path}: OK ({len(config.estates)} estates, {devices} devices, {len(config.rules)} site rules)")
    return 0


def _load_or_exit(path: str, environ: dict[str, str] | None = None) -> GatewayConfig:
    try:
        return load_config(path, environ)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        raise SystemExit(2) from exc


# -- run --------------------------------------------------------------------------------------------
async def _run(config: GatewayConfig) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    snapshots = memtrace.from_environment()
    if snapshots is not None:
        snapshots.start()
    app = App(config)
    app_task = asyncio.create_task(app.run(stop))
    ready = asyncio.create_task(app.ready.wait())
    await asyncio.wait([app_task, ready], return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if app.ready.is_set():
        heap.freeze_startup_heap()
    await app_task


# -- simulate ---------------------------------------------------------------------------------------
async def _simulate(config: GatewayConfig, scenario: str | None) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with SimulationHost(config) as host:
        for server in host.servers:
            log.info(
                "simulating Modbus devices on %s:%d units %s", server.host, server.port, sorted(server.units)
            )
        for device, sim in host.mqtt_devices.items():
            log.info("simulating MQTT device %s under %s/", device, sim.base)
        player = asyncio.create_task(play(load_scenario(scenario), host)) if scenario else None
        await stop.wait()
        if player:
            player.cancel()


# -- demo -------------------------------------------------------------------------------------------
async def _demo(args: argparse.Namespace) -> None:
    workdir = tempfile.TemporaryDirectory(prefix="estate-gateway-demo-")
    broker = await start_local_broker(os.environ.get("ESTATE_GATEWAY_BROKER", "auto"))
    token = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "DEMO_MQTT_PORT": str(broker.port),
        "DEMO_MODBUS_PORT": str(free_port()),
        "DEMO_API_PORT": str(args.port or free_port()),
        "DEMO_DB": args.db or str(Path(workdir.name) / "demo.db"),
        "DEMO_API_TOKEN": token,
        "DEMO_PUSH_PORT": str(free_port()),
        "DEMO_CAMERA_TOKEN": secrets.token_urlsafe(24),
        "DEMO_LINK_SECRET": secrets.token_urlsafe(24),
        "DEMO_MQTT_PROTOCOL": "3.1.1" if isinstance(broker, EmbeddedBroker) else "5",  # amqtt lacks MQTT 5
    }
    try:
        config = _load_or_exit(str(DEMO_CONFIG), env)
        stop = asyncio.Event()
        _stop_on_signals(stop)
        async with SimulationHost(config) as host:
            app = App(config)
            app_task = asyncio.create_task(app.run(stop))
            await app.ready.wait()
            heap.freeze_startup_heap()
            if app.push_port is not None:
                host.push_to(app.push_port)
            url = f"http://{config.api.host}:{app.api_port}"
            password = await _demo_console_user(app)
            print("\n  estate-gateway demo — 阳光花园 / Sunshine Garden")
            print(f"  broker  {broker.description}")
            print(f"  console {url}/console/   user demo   password {password}")
            print("  (same password: demo.lead 班长 confirms two-person commands; district is the regulator)")
            print(f"  API     {url}   (OpenAPI: {url}/docs)")
            print(f"  token   curl -H 'Authorization: Bearer {token}' {url}/incidents")
            print("  Ctrl-C stops everything.\n", flush=True)
            printer = asyncio.create_task(_print_incidents(app))

            def echo(step: Step) -> None:
                print(f"  [scenario t={step.at:>4.0f}s] {step.say}", flush=True)

            player = asyncio.create_task(play(load_scenario(args.scenario), host, echo=echo))
            if args.duration:
                asyncio.get_running_loop().call_later(args.duration, stop.set)
            await stop.wait()
            for task in (player, printer):
                task.cancel()
            await app_task
    finally:
        await broker.aclose()
        workdir.cleanup()
    print("demo stopped; broker, simulators and gateway are down.")


async def _demo_console_user(app: App) -> str:
    """A supervisor for every estate with a fresh password, shown on the terminal only (never logged);
    a --db kept from an earlier demo keeps its user, whose password is reset."""
    password = secrets.token_urlsafe(12)
    while "demo" in password.lower():  # the policy refuses a password holding the username
        password = secrets.token_urlsafe(12)
    accounts = Accounts(app.store)
    # demo.lead (班长 of the company's estates) confirms what demo asks under the two-person rule;
    # district (区住建局, the regulator) sees KPIs and reports only. Same password.
    for name, role, job, estates, display in (
        ("demo", "supervisor", None, ["*"], "演示 Demo"),
        ("demo.lead", None, "shift_leader", ["company:sunny-pm"], "值班班长 Shift leader"),
        ("district", "regulator", None, ["*"], "区住建局 District regulator"),
    ):
        try:
            await accounts.add_user(name, role, estates, password, display, job)
        except AccountError:
            await accounts.update_user(name, password=password, disabled=False)
    return password


async def _print_incidents(app: App) -> None:
    sub = app.feed.subscribe()
    try:
        while True:
            item = await sub.get()
            change, inc = item.change, item.change.incident
            entry = change.entries[-1] if change.entries else None
            label = "OPENED" if change.new else (entry.action.upper() if entry else "CHANGED")
            # An alarm joining or changing inside an incident is shown by its own message.
            zh = str(entry.detail.get("message_zh", inc.title)) if entry and not change.new else inc.title
            en = (
                str(entry.detail.get("message_en", inc.title_en))
                if entry and not change.new
                else inc.title_en
            )
            head = f"  #{inc.id:<4} {label:<24} {inc.priority.value:<8} {inc.estate}/{inc.device:<13}"
            if entry is not None and entry.action in ("notified", "notification_failed"):
                tried = ", ".join(f"{a['channel']}:{a['outcome']}" for a in entry.detail.get("attempts", []))
                print(
                    f"{head} 第{entry.detail.get('level')}级 → {entry.detail.get('name')} ({tried})",
                    flush=True,
                )
                continue
            print(f"{head} {zh} | {en}  [{alarm_state(inc).value}]", flush=True)
    finally:
        sub.close()


# -- entry point ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="estate-gateway", description="小区安防与设施物联网网关")
    parser.add_argument("--log-level", default=os.environ.get("ESTATE_GATEWAY_LOG", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the gateway for a site config")
    p.add_argument("config")
    p = sub.add_parser("check-config", help="validate a site config; exit 2 with file:line errors")
    p.add_argument("config")
    p = sub.add_parser("simulate", help="play the devices of a site config (commissioning practice)")
    p.add_argument("config")
    p.add_argument("--scenario", help="scenario name (drivers/sim/scenarios) or file")
    p = sub.add_parser("demo", help="private broker + simulators + gateway on SQLite, playing a scenario")
    p.add_argument("--scenario", default="demo")
    p.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    p.add_argument("--db", help="SQLite file (default: a fresh temporary one)")
    p.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds (0: run until Ctrl-C)"
    )
    add_user_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return cmd_check_config(args.config)
    if args.command == "user":
        return cmd_user(args)
    _setup_logging(
        args.log_level if args.command != "demo" else os.environ.get("ESTATE_GATEWAY_LOG", "WARNING")
    )
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "run":
            asyncio.run(_run(_load_or_exit(args.config)))
        elif args.command == "simulate":
            asyncio.run(_simulate(_load_or_exit(args.config), args.scenario))
        elif args.command == "demo":
            asyncio.run(_demo(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
