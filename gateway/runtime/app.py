"""The App: builds every part from the config and runs them in a visible order.

Start: store → incidents (restore active alarms into the engine) → pipeline → API → drivers.
Stop (SIGINT/SIGTERM, within 5 s): drivers → flush the ingest queue through the pipeline → API → store.
A crashed driver is restarted with exponential backoff, and the log says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import uvicorn

from drivers.anpr.mqtt import PlateDecoder
from drivers.anpr.receiver import PushReceiver
from drivers.commands import Commander, CommandSet, ModbusCommander, PulseCommander, RegisterCommander
from drivers.modbus_bus import BusPoller
from drivers.modbus_device import ModbusDeviceDriver
from drivers.mqtt_commands import MqttCommander
from drivers.mqtt_device import MqttJsonDecoder
from drivers.profiles import ModbusProfile, MqttProfile
from drivers.stats import StatsRegistry
from drivers.transports.dead_letter import DeadLetters
from drivers.transports.modbus import EndpointPool, ModbusEndpoint
from drivers.transports.mqtt import BrokerSettings, MqttIngress, Route
from drivers.transports.mqtt_outbox import Outbox
from drivers.watch import PointWatch
from gateway.alerts import AlertEngine, DeviceInfo
from gateway.alerts.rules import load_default_rules, merge_rules
from gateway.api import ApiContext, TokenAuth, create_app
from gateway.api.confirmations import command_rules
from gateway.auth.tenancy import Company, Tenancy
from gateway.config import ConfigError, GatewayConfig
from gateway.console import RecentReadings
from gateway.evidence import EvidenceService, PictureStore
from gateway.incidents import DeviceStateTracker, Grouping, IncidentFeed, IncidentService, LiveFeed
from gateway.ingest import IngestQueue
from gateway.kpi import KpiEngine
from gateway.kpi.engine import KpiValue
from gateway.model import Clock, Family, SystemClock
from gateway.runtime.anpr import (
    BarrierOpener,
    classifier_for,
    push_cameras,
    registries_of,
    restore_passes,
)
from gateway.runtime.build import BoundDevice, bind_devices
from gateway.runtime.cluster import ClusterRuntime
from gateway.runtime.escalation import EscalationRuntime
from gateway.runtime.pipeline import Observer, Pipeline
from gateway.runtime.rounds import Rounds
from gateway.sinks import InfluxSink, LineEncoder, open_incident_counts
from gateway.sinks.mqtt_egress import IncidentEgress
from gateway.sinks.mqtt_kpi import KpiEgress
from gateway.store import build_store, store_label

log = logging.getLogger(__name__)
SHUTDOWN_BUDGET = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the App owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def supervise(name: str, run: Callable[[], Awaitable[None]], max_backoff: float = 60.0) -> None:
    """Run a driver forever; when it crashes, log it and restart it after 1, 2, 4 ... 60 s."""
    backoff = 1.0
    while True:
        started = time.monotonic()
        try:
            await run()
            log.warning("%s stopped by itself; restarting in %.0fs", name, backoff)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in %.0fs", name, backoff)
        if time.monotonic() - started > 60:
            backoff = 1.0
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


class App:
    def __init__(
        self, config: GatewayConfig, clock: Clock | None = None, base_dir: Path | None = None
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.base_dir = base_dir or Path.cwd()
        devices, issues = bind_devices(config)
        if issues:
            raise ConfigError(issues)
        self.devices: list[BoundDevice] = devices
        self.stats = StatsRegistry()
        self.queue = IngestQueue(config.ingest.queue_size)
        self.feed = IncidentFeed()
        self.store = build_store(config.store, self.base_dir)
        grouping = Grouping(
            config.incidents.correlation_window, config.incidents.flood_count, config.incidents.flood_window
        )
        self.live = LiveFeed()  # the console's and API clients' resumable feed
        self.service = IncidentService(self.store, self.clock, self.feed, grouping, self.live)
        rules = merge_rules(load_default_rules(), config.rules)
        infos = [d.info for d in devices]
        self.engine = AlertEngine(rules, infos, self.clock)
        self.device_state = DeviceStateTracker(self.live, infos, self.engine.online, self.clock)
        self.kpi = KpiEngine.from_config(config, infos, self.clock, self.store, rules)
        self.service.listeners.append(self.kpi.on_incident_changes)
        self.recent = RecentReadings(expected_series=sum(len(i.points) for i in infos))  # console charts
        observers: list[Observer] = [self.device_state, self.kpi, self.recent]
        self.pipeline = Pipeline(self.queue, self.engine, self.service, observers=observers)
        self._kpi_task: asyncio.Task[None] | None = None
        self._sink_task: asyncio.Task[None] | None = None
        self.sink, self.egress = self._outputs(config, infos)
        # Filled as the drivers start; escalation's relay channels (local outputs) read the same dict.
        self.commanders: dict[tuple[str, str], Commander] = {}
        self.escalation = self._escalation(config, devices) if config.escalation.enabled else None
        self._escalation_task: asyncio.Task[None] | None = None
        # Several instances on one PostgreSQL database: this one runs the estates it holds leases for.
        self.cluster: ClusterRuntime | None = ClusterRuntime(self) if config.cluster.enabled else None
        self._ownership_task: asyncio.Task[None] | None = None
        if self.cluster is not None and self.escalation is not None:
            self.escalation.escalator.scope = self.cluster.scope
        # Guard tours and maintenance duties: observers with timers of their own (gateway/runtime/rounds.py)
        self.rounds = Rounds(config, self.store, self.clock, self.service, self.kpi, self.pipeline.observers,
                             self.escalation)  # fmt: skip
        self.pipeline.observers.extend(self.rounds.trackers)
        self.endpoints = EndpointPool()
        self.mqtt: MqttIngress | None = None
        self.estate_ingress: dict[str, MqttIngress] = {}  # several instances: one session per estate
        self._evidence(config, devices)
        self.registries = registries_of(config)  # vehicle registries by estate
        self.opener = BarrierOpener(self.commanders, self.store.record_audit, self.clock)
        self.push: PushReceiver | None = None
        self.push_port: int | None = None
        self.api_port: int | None = None
        self.ready = asyncio.Event()

    # -- parts -----------------------------------------------------------------------------------
    def _driver_tasks(
        self, devices: list[BoundDevice] | None = None, estate: str | None = None
    ) -> dict[str, Callable[[], Awaitable[None]]]:
        """The drivers of `devices` (default: all). With `estate` (several instances, gateway/cluster)
        they are that estate's alone, on an MQTT session of its own (client id `<client_id>-<estate>`),
        so the estate's queued QoS 1 messages follow it to whichever instance owns it next."""
        tasks: dict[str, Callable[[], Awaitable[None]]] = {}
        buses: dict[ModbusEndpoint, list[ModbusDeviceDriver]] = {}  # one poller per endpoint
        routes: list[Route] = []
        mqtt_commanders: dict[tuple[str, str], Callable[..., MqttCommander]] = {}  # need the ingress
        for bound in self.devices if devices is None else devices:
            cfg, stats = bound.config, self.stats.for_device(bound.estate, bound.config.id)
            if isinstance(bound.profile, ModbusProfile) and cfg.modbus is not None:
                endpoint = self.endpoints.get(
                    cfg.modbus.host, cfg.modbus.port, cfg.modbus.timeout, cfg.modbus.framer
                )
                driver = ModbusDeviceDriver(
                    bound.estate,
                    cfg.id,
                    bound.profile,
                    endpoint,
                    cfg.modbus.unit_id,
                    cfg.poll_interval,
                    cfg.offline_after,
                    stats,
                    self.clock,
                    cfg.modbus.retries,
                )
                buses.setdefault(endpoint, []).append(driver)
                # Built whatever the API allows (it checks the site's policy): cameras open barrier relays.
                unit, profile = cfg.modbus.unit_id, bound.profile
                commanders: list[Commander] = []
                if profile.control is not None:
                    commanders.append(ModbusCommander(profile, endpoint, unit, self.clock))
                if profile.pulses:
                    commanders.append(PulseCommander(profile, endpoint, unit, self.clock))
                if profile.writes:  # register commands: a fire panel's silence and reset
                    commanders.append(RegisterCommander(profile, endpoint, unit, self.clock))
                if commanders:
                    self.commanders[(bound.estate, cfg.id)] = CommandSet(commanders)
            elif isinstance(bound.profile, MqttProfile) and cfg.mqtt is not None:
                decoder = self._mqtt_decoder(bound)
                watch = PointWatch() if bound.profile.commands and cfg.commands else None
                routes.append(Route(cfg.mqtt.topic, decoder, stats, cfg.mqtt.match, watch))
                if watch is not None:  # its commands confirm on the device's own next state readings
                    mqtt_commanders[(bound.estate, cfg.id)] = functools.partial(
                        MqttCommander, cfg.id, bound.profile, watch=watch, topic_filter=cfg.mqtt.topic,
                        variables=cfg.mqtt.vars,
                    )  # fmt: skip
        for bus, drivers in buses.items():
            poller = BusPoller(drivers, self.clock)
            name = f"modbus {bus.label}" if estate is None else f"modbus {bus.label} {estate}"
            tasks[name] = functools.partial(poller.run, self.queue.put)
        if routes:
            m = self.config.mqtt
            settings = self._broker_settings(
                m.client_id if estate is None else f"{m.client_id}-{estate}",
                f"estate-gateway/{self.config.gateway_id}/status" if estate is None else None,
            )
            ingress = MqttIngress(settings, routes, self.clock)
            if estate is None:
                self.mqtt = ingress
            else:
                self.estate_ingress[estate] = ingress
            if m.dead_letter_topic:
                topic = m.dead_letter_topic.replace("{gateway}", self.config.gateway_id)
                ingress.dead_letters = DeadLetters(topic, m.dead_letter_rate, ingress.send_nowait, self.clock)
            tasks["mqtt ingress" if estate is None else f"mqtt ingress {estate}"] = lambda: ingress.run(
                self.queue.put
            )
            for key, make in mqtt_commanders.items():
                self.commanders[key] = make(publisher=ingress)
        return tasks

    def _broker_settings(self, client_id: str, status_topic: str | None) -> BrokerSettings:
        m = self.config.mqtt
        return BrokerSettings(
            m.host,
            m.port,
            client_id,
            m.username,
            m.password,
            m.keepalive,
            status_topic=status_topic,
            protocol=m.protocol,
            session_expiry=m.session_expiry,
            receive_maximum=m.receive_maximum,
            max_backlog=m.max_backlog,
            tls=m.tls,
            ca_file=self._path_of(m.ca_file),
            cert_file=self._path_of(m.cert_file),
            key_file=self._path_of(m.key_file),
            tls_insecure=m.tls_insecure,
        )

    def _path_of(self, name: str | None) -> str | None:
        """A file named in the site config; relative to the working dir, as the store path is."""
        return None if name is None else str(self.base_dir / name)

    def _mqtt_decoder(self, bound: BoundDevice) -> MqttJsonDecoder:
        """A camera's plate reads are classified by its estate's registry; other devices decode as-is."""
        assert isinstance(bound.profile, MqttProfile)
        cfg, stats = bound.config, self.stats.for_device(bound.estate, bound.config.id)
        if cfg.family is not Family.PLATE_BARRIER:
            return MqttJsonDecoder(bound.estate, cfg.id, bound.profile, stats)
        opener = self.opener.for_camera(bound.estate, cfg.id, cfg.barrier) if cfg.barrier else None
        classifier = classifier_for(bound, self.registries)
        pictures = self._picture_sink
        return PlateDecoder(bound.estate, cfg.id, bound.profile, stats, classifier, opener, pictures)

    def _escalation(self, config: GatewayConfig, devices: list[BoundDevice]) -> EscalationRuntime:
        has_mqtt = any(isinstance(d.profile, MqttProfile) for d in devices)
        return EscalationRuntime(
            config, self.service, {(d.estate, d.config.id): d.config.location for d in devices},
            self.clock, self._publish if has_mqtt else None,
            commanders=self.commanders, audit=self.store.record_audit,
        )  # fmt: skip

    def _evidence(self, config: GatewayConfig, devices: list[BoundDevice]) -> None:
        """Plate pictures on disk (written off the event loop) and incidents' evidence (gateway/evidence)."""
        ev = config.evidence
        self.pictures = PictureStore(self.base_dir / ev.dir, ev, self.clock) if ev.enabled else None
        self._picture_sink = self.pictures.accept if self.pictures is not None else None
        cameras = {(d.estate, d.config.id): list(d.config.cameras) for d in devices if d.config.cameras}
        timezones = {e.id: e.timezone for e in config.estates}
        self.evidence = EvidenceService(cameras, timezones, self.pictures, ev.match_window)
        self._evidence_task: asyncio.Task[None] | None = None

    def _influx_sink(self, infos: list[DeviceInfo]) -> InfluxSink:
        """Readings, events, alarms, incidents, KPIs and health to InfluxDB, spooled while it is away."""
        estates = [e.id for e in self.config.estates]
        return InfluxSink(
            self.config.influx,
            LineEncoder.of(infos),
            base_dir=self.base_dir,
            gateway_id=self.config.gateway_id,
            health=self.health,
            open_incidents=lambda: open_incident_counts(self.service, [e for e in estates if self._runs(e)]),
            kpis=self._owned_kpis,
            alarm=self.service.apply,  # "metrics spool failing" (disk full) as a gateway health alarm
            estates=estates,
        )

    def _outputs(
        self, config: GatewayConfig, infos: list[DeviceInfo]
    ) -> tuple[InfluxSink | None, IncidentEgress | None]:
        """The InfluxDB sink and the MQTT incident egress, where configured, downstream of the commit."""
        sink = egress = None
        self.mqtt_out: MqttIngress | None = None  # the egress's own broker connection
        self._egress_task: asyncio.Task[None] | None = None
        self.kpi_egress: KpiEgress | None = None  # KPIs on the same connection
        self._kpi_egress_task: asyncio.Task[None] | None = None
        if config.influx.enabled:
            sink = self._influx_sink(infos)
            self.pipeline.observers.append(sink)
            self.service.listeners.append(sink.on_incident_changes)
        # Where the devices use the broker. A connection of its own (no subscriptions), not the devices':
        # on theirs, under a backlog, the broker's PUBACKs for the snapshots came after the whole backlog.
        if config.mqtt.publish_incidents and any(isinstance(d.profile, MqttProfile) for d in self.devices):
            client_id = f"{config.mqtt.client_id}-egress-{config.gateway_id}"
            outbox = Outbox()
            self.mqtt_out = MqttIngress(self._broker_settings(client_id, None), [], self.clock, outbox)
            egress = IncidentEgress(outbox, config.gateway_id)
            self.service.listeners.append(egress)
            if (interval := config.mqtt.kpi_interval) > 0:
                self.kpi_egress = KpiEgress(outbox, config.gateway_id, self._owned_kpis, interval)
        return sink, egress

    async def _owned_kpis(self) -> list[KpiValue]:
        """The KPIs of the estates this instance runs, computed a few estates per loop turn."""
        if self.cluster is None:
            return await self.kpi.paced_snapshot()
        values = await self.kpi.paced_snapshot(frozenset(self.cluster.ownership.owned))
        return [v for v in values if self._runs(v.estate)]  # an estate handed over during the round

    def _runs(self, estate: str) -> bool:
        """This instance processes the estate (always, unless several instances share the estates)."""
        return self.cluster is None or estate in self.cluster.ownership.owned

    def start_driver(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        return asyncio.create_task(supervise(name, factory), name=name)

    def health(self) -> dict[str, Any]:
        ingresses = [self.mqtt] if self.mqtt else list(self.estate_ingress.values())  # one, or one per estate
        online = [self.engine.online(d.estate, d.config.id) for d in self.devices]
        return {
            "gateway_id": self.config.gateway_id,
            "queue_depth": self.queue.depth,
            "queue_high_water": self.queue.high_water,
            "items_processed": self.pipeline.items,
            "store_failures": self.pipeline.store_failures,
            "core_errors": self.pipeline.core_errors,
            "mqtt_connected": all(i.connected for i in ingresses) if ingresses else None,
            "mqtt_unrouted": sum(i.unrouted for i in ingresses) if ingresses else None,
            "mqtt_messages_accepted": sum(i.accepted for i in ingresses),  # their items reached the core
            **({f"mqtt_egress_{k}": v for k, v in self.egress.outbox.stats().items()} if self.egress else {}),
            **(
                {f"mqtt_dead_letters_{k}": v for k, v in self.mqtt.dead_letters.stats().items()}
                if self.mqtt and self.mqtt.dead_letters
                else {}
            ),
            "devices": len(self.devices),
            "devices_online": sum(1 for o in online if o is True),
            "devices_offline": sum(1 for o in online if o is False),
            "incidents_opened": self.service.opened,
            "transitions_not_owned": self.service.not_owned,
            "incidents_deduplicated": self.service.manager.deduplicated,
            "alarms_correlated": self.service.manager.correlated,
            "alarms_in_flood": self.service.manager.flooded,
            "chattering_alarms": self.service.manager.chattering,
            "transitions_held_out_of_service": self.service.manager.held,
            "feed_seq": self.live.seq,
            "feed_clients": self.live.subscribers,
            "feed_replay_items": self.live.replay_items,
            "feed_replay_capacity": self.live.replay_capacity,
            "kpi_save_failures": self.kpi.save_failures,
            **({f"sink_{k}": v for k, v in self.sink.stats().items()} if self.sink else {}),
            **(self.escalation.health() if self.escalation else {}),
            **(self.cluster.health() if self.cluster else {}),
            **self.rounds.health(),
            **(self.pictures.health() if self.pictures is not None else {}),
        }

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """The MQTT notification channel's way out: the ingress's connection (QoS 1)."""
        if self.mqtt is None:
            raise ConnectionError("no MQTT connection")
        await self.mqtt.publish(topic, payload)

    # -- lifecycle -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self.store.open()
        log.info("store: %s", store_label(self.store))
        active = await self.service.start()
        self.engine.restore_active(active)
        self.device_state.restore_alarms(
            (i.estate, i.device, i.key, i.rule.priority) for i in self.engine.instances if i.active
        )
        await self.kpi.load()
        self.kpi.restore_active(active)
        self._kpi_task = asyncio.create_task(self.kpi.run(), name="kpi-save")
        if self.pictures is not None:
            self._evidence_task = asyncio.create_task(self.pictures.run(), name="evidence-pictures")
        if self.mqtt_out is not None and self.egress is not None:
            if self.cluster is None:  # the broker's retained copies; in a cluster, each owner's at adoption
                self.egress.republish(self.service.manager.by_id.values())
            self._egress_task = self.start_driver(
                "mqtt egress", functools.partial(self.mqtt_out.run, self.queue.put)
            )
            if self.kpi_egress is not None:
                self._kpi_egress_task = asyncio.create_task(self.kpi_egress.run(), name="mqtt-kpi")
        if self.sink is not None:
            self._sink_task = asyncio.create_task(self.sink.run(), name="influx-sink")
            log.info("influx sink: %s bucket %s", self.config.influx.url, self.config.influx.bucket)
        self.engine.restore_windows(await self.store.load_windows())
        restore_passes(self.registries, await self.store.load_visitor_passes(self.clock.now()))
        if self.escalation is not None:  # the console shows each siren's last pulse across restarts
            await self.escalation.restore_outputs()
        log.info(
            "incidents: %d unresolved restored, %d alarms active",
            len(self.service.manager.by_key),
            len(active),
        )
        log.info("alert core: %d rule instances over %d devices", self.engine.rule_count, len(self.devices))
        pipeline_task = asyncio.create_task(self.pipeline.run(), name="pipeline")
        server, server_task = await self._start_api()
        push_server, push_task = await self._start_push()
        if self.cluster is None:
            driver_tasks = [self.start_driver(name, run) for name, run in self._driver_tasks().items()]
            log.info("drivers: %d started", len(driver_tasks))
        else:  # drivers start estate by estate, as leases are won (tours and duties too: rounds first)
            await self.rounds.start()
            await self.cluster.start()
            await self.cluster.ownership.cycle()
            self._ownership_task = asyncio.create_task(self.cluster.ownership.run(), name="cluster-leases")
            driver_tasks = []
        if self.escalation is not None:
            self._escalation_task = asyncio.create_task(self.escalation.run(), name="escalation")
        if self.cluster is None:
            await self.rounds.start()
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await self._stop(driver_tasks, pipeline_task, (push_server, push_task), (server, server_task))

    async def _stop_egress(self, deadline: float) -> None:
        """The last snapshots get a moment to reach the broker; what is still waiting then is lost (the
        next start republishes every unresolved incident)."""
        if self._kpi_egress_task is not None:
            self._kpi_egress_task.cancel()
            await asyncio.gather(self._kpi_egress_task, return_exceptions=True)
        if self._egress_task is None or self.mqtt_out is None or self.egress is None:
            return
        connection, outbox = self.mqtt_out, self.egress.outbox
        while connection.connected and (outbox.pending or outbox.inflight):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        self._egress_task.cancel()
        await asyncio.gather(self._egress_task, return_exceptions=True)

    async def _start_api(self) -> tuple[_Server | None, asyncio.Task[None] | None]:
        api = self.config.api
        if not api.enabled:
            return None, None
        tenancy = Tenancy.of(
            Company(c.id, c.name.zh, c.name.en, tuple(c.estates)) for c in self.config.companies
        )  # company:<id> scopes (gateway/auth/tenancy.py)
        least, dangerous = command_rules((d.estate, d.config) for d in self.devices)
        ctx = ApiContext(
            self.service,
            [d.info for d in self.devices],
            self.stats,
            TokenAuth.from_config(api, self.store, self.clock, tenancy=tenancy),  # tokens, users, keys
            online=self.engine.online,
            health=self.health,
            commanders=self.commanders,  # filled as the drivers start (the same dict)
            command_policy=least,
            dangerous=dangerous,  # two-person rules (gateway/api/confirmations.py)
            registries=self.registries,
            rosters=self.escalation.rosters if self.escalation else {},
            ack_links=self.escalation.links if self.escalation else None,
            timezones={e.id: e.timezone for e in self.config.estates},
            kpi=self.kpi,
            estate_names={e.id: (e.name.zh, e.name.en) for e in self.config.estates},
            recent=self.recent,
            cluster=self.cluster,  # several instances: forward writes for estates owned elsewhere
            evidence=self.evidence,  # camera links and plate pictures of incidents
            local_outputs=self.escalation.outputs if self.escalation else None,
            patrol=self.rounds.patrol,  # guard tours and maintenance duties (gateway/runtime/rounds.py)
            maintenance=self.rounds.maintenance,
        )
        server, task, self.api_port = await _serve(create_app(ctx), api.host, api.port, "api")
        log.info("api: http://%s:%d (docs at /docs)", api.host, self.api_port)
        return server, task

    async def _start_push(self) -> tuple[_Server | None, asyncio.Task[None] | None]:
        """The camera port, opened only when some camera pushes."""
        cameras = push_cameras(self.devices, self.registries, self.stats, self.opener, self._picture_sink)
        if not cameras:
            return None, None
        cfg = self.config.http_push
        self.push = PushReceiver(cameras, self.queue.put, self.clock, cfg.commit_wait)
        self.push.owns = self._runs  # several instances: pushes for others' estates get 503
        server, task, self.push_port = await _serve(self.push.app, cfg.host, cfg.port, "camera push")
        log.info("camera push: http://%s:%d/anpr/{estate}/{device} (%d cameras)", cfg.host, self.push_port,
                 len(cameras))  # fmt: skip
        return server, task

    async def _stop(
        self,
        drivers: list[asyncio.Task[None]],
        pipeline: asyncio.Task[None],
        push: tuple[_Server | None, asyncio.Task[None] | None],
        api: tuple[_Server | None, asyncio.Task[None] | None],
    ) -> None:
        """Ingress first (drivers, camera port), then the core drains, then the API and the store."""
        deadline = time.monotonic() + SHUTDOWN_BUDGET
        if self._ownership_task is not None:  # no estate arrives or leaves during the stop
            self._ownership_task.cancel()
            await asyncio.gather(self._ownership_task, return_exceptions=True)
        if self.cluster is not None:
            drivers = drivers + self.cluster.driver_tasks()
        log.info("stopping: drivers")
        for task in drivers:
            task.cancel()
        if drivers:  # a driver stuck in a graceful disconnect must not eat the whole stop budget
            _, stuck = await asyncio.wait(drivers, timeout=max(0.5, deadline - time.monotonic() - 3.0))
            if stuck:
                log.warning("stopping: %d drivers did not stop in time: %s", len(stuck),
                            ", ".join(t.get_name() for t in stuck))  # fmt: skip
        await _shut(push, 1.0)  # cameras get no reply now and re-send later
        await self.opener.close()
        if self._evidence_task is not None:  # a picture still queued is lost (its camera has a copy)
            self._evidence_task.cancel()
            await asyncio.gather(self._evidence_task, return_exceptions=True)
        await self.pipeline.stop(deadline - time.monotonic() - 2.0)
        await asyncio.gather(pipeline, return_exceptions=True)
        flushed = await self.pipeline.flush(deadline - 1.0)
        log.info("stopping: flushed %d queued deliveries", flushed)
        if self._escalation_task is not None:  # a step cut mid-send is claimed again after the restart
            self._escalation_task.cancel()
            await asyncio.gather(self._escalation_task, return_exceptions=True)
        await self.rounds.stop()
        if self.escalation is not None:
            await self.escalation.close()
        if self.cluster is not None:  # committed and no longer sending: the next owner may start now
            await self.cluster.stop()
        await self._stop_egress(deadline - 2.0)
        self.device_state.close()
        if self.sink is not None:  # what it cannot write in time stays in the spool for the next start
            await self.sink.close(max(0.5, deadline - time.monotonic() - 1.5))
            if self._sink_task is not None:
                self._sink_task.cancel()
                await asyncio.gather(self._sink_task, return_exceptions=True)
        if self._kpi_task is not None:
            self._kpi_task.cancel()
            await asyncio.gather(self._kpi_task, return_exceptions=True)
        try:
            await self.kpi.close()  # today's and this month's accumulations survive the restart
        except Exception:
            log.exception("kpi: final save failed; the figures since the last save are lost")
        await _shut(api, deadline - time.monotonic() - 0.5)
        self.endpoints.close()
        await self.store.close()
        log.info("stopped")


async def _shut(served: tuple[_Server | None, asyncio.Task[None] | None], within: float) -> None:
    server, task = served
    if server is not None and task is not None:
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, max(0.1, within))


async def _serve(app: Any, host: str, port: int, name: str) -> tuple[_Server, asyncio.Task[None], int]:
    """Start uvicorn for `app` in this loop; returns once it listens, with the port it got."""
    server = _Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(), name=name)
    while not server.started:
        if task.done():
            task.result()  # raises the bind error
            raise RuntimeError(f"{name} server stopped during start-up")
        await asyncio.sleep(0.02)
    return server, task, server.servers[0].sockets[0].getsockname()[1]
