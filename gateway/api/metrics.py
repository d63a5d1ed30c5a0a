"""Prometheus `/metrics`: the gateway's own health in the text exposition format.

Nothing here counts anything. A custom collector reads, at scrape time, what the running parts already
keep: the runtime's health dict (queue, pipeline, MQTT, escalation, sink), the per-device driver counters
(StatsRegistry) and the incident manager's unresolved incidents. Each app builds its own
CollectorRegistry, so two apps in one process (tests, a reload) never share or collide on metrics.

Scraping needs a bearer token scoped to every estate: the figures span all estates, so an estate-scoped
principal gets 403.
"""

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.api.auth import require
from gateway.api.context import ApiContext
from gateway.incidents.manager import UNRESOLVED
from gateway.model import Incident, Priority

__all__ = ["PREFIX", "GatewayCollector", "metrics_registry", "metrics_router"]

PREFIX = "estate_gateway"

# Health keys with a known meaning: key → (metric name without prefix, kind, help). Counters get the
# `_total` suffix from prometheus-client. Any other numeric top-level key (e.g. a sink's `sink_*`
# figures) is exported as a gauge named after the key, so a new health figure is never lost.
_HEALTH: dict[str, tuple[str, str, str]] = {
    "queue_depth": ("queue_depth", "gauge", "Items waiting in the ingest queue"),
    "queue_high_water": ("queue_high_water", "gauge", "Highest ingest queue depth since start"),
    "items_processed": ("items_processed", "counter", "Readings and events the alert core processed"),
    "store_failures": ("store_failures", "counter", "Failed store commits"),
    "core_errors": ("core_errors", "counter", "Errors raised in the alert core"),
    "mqtt_connected": ("mqtt_connected", "gauge", "1 while the MQTT ingress is connected"),
    "mqtt_unrouted": ("mqtt_unrouted", "counter", "MQTT messages no device claimed"),
    "mqtt_egress_sent": ("mqtt_egress_sent", "counter", "Incident snapshots written (resends too)"),
    "mqtt_egress_acked": ("mqtt_egress_acked", "counter", "Incident snapshots the broker acknowledged"),
    "mqtt_egress_pending": ("mqtt_egress_pending", "gauge", "Incident snapshots waiting to be sent"),
    "mqtt_egress_inflight": ("mqtt_egress_inflight", "gauge", "Snapshots sent, not yet acknowledged"),
    "mqtt_egress_replaced": (
        "mqtt_egress_replaced", "counter", "Waiting snapshots a newer one of the same incident replaced"
    ),
    "mqtt_egress_dropped": ("mqtt_egress_dropped", "counter", "Waiting snapshots dropped (too many waiting)"),
    "mqtt_egress_refused": ("mqtt_egress_refused", "counter", "Snapshots the broker refused (MQTT 5 reason)"),
    "devices": ("devices", "gauge", "Configured devices"),
    "devices_online": ("devices_online", "gauge", "Devices currently online"),
    "devices_offline": ("devices_offline", "gauge", "Devices currently offline"),
    "incidents_opened": ("incidents_opened", "counter", "Incidents opened"),
    "incidents_deduplicated": ("incidents_deduplicated", "counter", "Alarm activations deduplicated"),
    "alarms_correlated": ("alarms_correlated", "counter", "Alarms joined to a correlated incident"),
    "alarms_in_flood": ("alarms_in_flood", "counter", "Alarms grouped into a flood incident"),
    "chattering_alarms": ("chattering_alarms", "counter", "Alarms flagged as chattering"),
    "transitions_held_out_of_service": (
        "transitions_held_out_of_service", "counter", "Alarm transitions held for out-of-service devices"
    ),
    "feed_replay_items": ("feed_replay_items", "gauge", "Items in the live feed's replay ring"),
    "feed_replay_capacity": ("feed_replay_capacity", "gauge", "Most items the live feed's replay ring holds"),
    "escalation_steps_fired": ("escalation_steps_fired", "counter", "Escalation steps fired"),
    "notifications_sent": ("notifications_sent", "counter", "Notifications delivered"),
    "notifications_failed": ("notifications_failed", "counter", "Notifications that failed on every channel"),
    "nobody_on_duty": ("nobody_on_duty", "counter", "Escalation steps that found nobody on duty"),
    "escalation_steps_grouped": ("escalation_steps_grouped", "counter", "Escalation steps held for grouping"),
    # the InfluxDB sink's figures (gateway/sinks/influx.py stats(), added to health with a `sink_` prefix)
    "sink_points_written": ("sink_points_written", "counter", "Points InfluxDB accepted"),
    "sink_points_replayed": ("sink_points_replayed", "counter", "Spooled points written after an outage"),
    "sink_points_spooled": ("sink_points_spooled", "counter", "Points put in the disk spool"),
    "sink_points_dropped": ("sink_points_dropped", "counter", "Points lost (all reasons)"),
    "sink_write_errors": ("sink_write_errors", "counter", "Failed writes to InfluxDB"),
    "sink_observe_errors": ("sink_observe_errors", "counter", "Items the sink failed to encode"),
    "sink_spool_corrupt_records": ("sink_spool_corrupt_records", "counter", "Unreadable spool records"),
    "sink_lag_s": ("sink_lag_seconds", "gauge", "Age of the oldest point not yet written to InfluxDB"),
    "sink_queue_points": ("sink_queue_points", "gauge", "Points queued in memory for InfluxDB"),
    "sink_spool_points": ("sink_spool_points", "gauge", "Points spooled on disk awaiting InfluxDB"),
    "sink_spool_bytes": ("sink_spool_bytes", "gauge", "Size of the disk spool"),
}  # fmt: skip
_SKIPPED = {"gateway_id", "uptime_s", "status", "version"}  # labels or /health-only facts, not metrics
_DROPPED_BY_REASON = "sink_points_dropped_"  # sink_points_dropped_<reason>: one labelled counter
# Names this collector builds itself: a health key that would map onto one is left out, since a name
# exposed twice makes Prometheus reject the whole scrape.
_OWN = {"build", "start_time_seconds", "auth_failures", "notify_delay_seconds", "incidents_open",
        "channel_sent", "channel_failed", "channel_consecutive_failures"}  # fmt: skip
_DELAYS = {"notify_delay_s": "all", "notify_engine_delay_s": "engine"}
_QUANTILES = {"p50": "0.5", "p90": "0.9", "p99": "0.99"}


def _number(value: object) -> float | None:
    """A health value as a sample value; None for what is not a finite number (absent, text, lists)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _metric_key(key: str) -> str:
    """`sink_lag_s` → `sink_lag_seconds`: Prometheus base units spelled out."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in key)
    return name[:-2] + "_seconds" if name.endswith("_s") else name


class GatewayCollector(Collector):
    """Reads the ApiContext's live parts at each scrape; keeps no state of its own."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterable[Metric]:
        health = self.ctx.health()
        info = InfoMetricFamily(f"{PREFIX}_build", "Gateway version and id")
        info.add_metric([], {"version": __version__, "gateway_id": str(health.get("gateway_id", ""))})
        yield info
        yield GaugeMetricFamily(f"{PREFIX}_start_time_seconds", "Start time, epoch s", value=self.ctx.started)
        failures = getattr(self.ctx.auth, "failures", None)
        if isinstance(failures, int):
            yield CounterMetricFamily(f"{PREFIX}_auth_failures", "Rejected API credentials", value=failures)
        yield from self._health(health)
        yield from self._delays(health)
        yield from self._channels(health.get("channels"))
        yield from self._devices()
        yield self._incidents_open()

    def _health(self, health: Mapping[str, Any]) -> Iterator[Metric]:
        dropped = CounterMetricFamily(
            f"{PREFIX}_sink_points_dropped_by_reason", "Points the sink lost, by reason", labels=["reason"]
        )
        for key, raw in health.items():
            value = _number(raw)
            if value is None or key in _SKIPPED:
                continue
            if key.startswith(_DROPPED_BY_REASON):
                dropped.add_metric([key.removeprefix(_DROPPED_BY_REASON)], value)
                continue
            name, kind, text = _HEALTH.get(key, (_metric_key(key), "gauge", f"Health figure {key}"))
            if name in _OWN or name.startswith("device_"):
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"{PREFIX}_{name}", text, value=value)
        if dropped.samples:
            yield dropped

    def _delays(self, health: Mapping[str, Any]) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            f"{PREFIX}_notify_delay_seconds",
            "Notification delay percentiles: due → sent (stage all) or without deliberate holds (engine)",
            labels=["stage", "quantile"],
        )
        for key, stage in _DELAYS.items():
            cuts = health.get(key)
            if not isinstance(cuts, Mapping):
                continue
            for cut, quantile in _QUANTILES.items():
                value = _number(cuts.get(cut))
                if value is not None:
                    gauge.add_metric([stage, quantile], value)
        if gauge.samples:
            yield gauge

    def _channels(self, channels: object) -> Iterator[Metric]:
        if not isinstance(channels, Mapping) or not channels:
            return
        sent = CounterMetricFamily(
            f"{PREFIX}_channel_sent", "Deliveries sent per channel", labels=["channel"]
        )
        failed = CounterMetricFamily(
            f"{PREFIX}_channel_failed", "Failed tries per channel", labels=["channel"]
        )
        streak = GaugeMetricFamily(
            f"{PREFIX}_channel_consecutive_failures",
            "Failed tries since the last success",
            labels=["channel"],
        )
        for name, health in channels.items():
            if not isinstance(health, Mapping):
                continue
            for family, key in ((sent, "sent"), (failed, "failed"), (streak, "consecutive_failures")):
                value = _number(health.get(key))
                if value is not None:
                    family.add_metric([str(name)], value)
        yield from (sent, failed, streak)

    def _devices(self) -> Iterator[Metric]:
        labels = ["estate", "device", "family"]
        families = {(d.estate, d.device): d.family for d in self.ctx.devices}
        counters = {
            key: CounterMetricFamily(f"{PREFIX}_device_{key}", text, labels=labels)
            for key, text in (
                ("readings", "Readings decoded"),
                ("events", "Device events decoded"),
                ("polls", "Modbus polls completed"),
                ("ignored", "Messages consumed on purpose without a reading"),
            )
        }
        errors = CounterMetricFamily(
            f"{PREFIX}_device_errors",
            "Driver errors by reason (timeout, decode errors...)",
            labels=[*labels, "reason"],
        )
        online = GaugeMetricFamily(
            f"{PREFIX}_device_online", "1 online, 0 offline (absent: unknown)", labels=labels
        )
        seen = GaugeMetricFamily(
            f"{PREFIX}_device_last_seen_seconds", "Last data from the device, epoch s", labels=labels
        )
        for (estate, device), stats in sorted(self.ctx.stats.items()):
            values = [estate, device, families.get((estate, device), "")]
            for key, family in counters.items():
                family.add_metric(values, getattr(stats, key))
            for reason, count in sorted(stats.errors.items()):
                errors.add_metric([*values, reason], count)
            state = self.ctx.online(estate, device)
            if state is None:
                state = stats.online
            if state is not None:
                online.add_metric(values, float(state))
            if stats.last_seen is not None:
                seen.add_metric(values, stats.last_seen)
        yield from counters.values()
        yield from (errors, online, seen)

    def _incidents_open(self) -> Metric:
        """Unresolved incidents by estate, priority and state; zeros for every configured estate, so a
        dashboard or alert rule sees a series, not a gap, when nothing is open."""
        gauge = GaugeMetricFamily(
            f"{PREFIX}_incidents_open", "Unresolved incidents", labels=["estate", "priority", "state"]
        )
        counts: dict[tuple[str, str, str], int] = {}
        for estate in sorted({d.estate for d in self.ctx.devices}):
            for priority in Priority:
                for state in UNRESOLVED:
                    counts[estate, priority.value, state.value] = 0
        for incident in _unresolved(self.ctx):
            key = (incident.estate, incident.priority.value, incident.state.value)
            counts[key] = counts.get(key, 0) + 1
        for labels, count in sorted(counts.items()):
            gauge.add_metric(list(labels), count)
        return gauge


def _unresolved(ctx: ApiContext) -> list[Incident]:
    """Each unresolved incident once: by id once committed, by member alarm key before that."""
    manager = ctx.service.manager
    unique = {id(i): i for i in (*manager.by_id.values(), *manager.by_key.values())}
    return [i for i in unique.values() if i.state in UNRESOLVED]


def metrics_registry(ctx: ApiContext) -> CollectorRegistry:
    """A registry of its own for one app: the default global registry is never touched."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(ctx))
    return registry


def metrics_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["health"])
    registry = metrics_registry(ctx)

    # async on purpose: the collector reads in-memory state the event loop owns, so it must not run
    # in the threadpool FastAPI uses for plain `def` routes.
    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
        dependencies=[require(ctx.auth, "viewer", every_estate=True)],
    )
    async def metrics() -> Response:
        """The gateway's own health; it spans every estate, so an estate-scoped caller gets 403."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
