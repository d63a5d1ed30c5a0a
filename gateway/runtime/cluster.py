"""The App's side of estate ownership (gateway/cluster): what happens when estates arrive or leave.

Arrive (adopt): firing escalation steps a dead owner left are released → the incident view, active
alarms, rule windows and KPI accumulators of those estates are loaded from the store → their drivers
start (each estate on an MQTT session of its own, so QoS 1 messages queued while nobody owned it are
delivered now).

Leave (shed): their drivers stop → what they already queued is committed (unless the lease is lost
already) → their KPI accumulators are saved → their state is forgotten here. The lease is released by
the caller only after that, so the next owner never sees an estate half-processed by two instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import httpx

from gateway.cluster import LeaseOwnership
from gateway.cluster.forward import FORWARDED_HEADER, Owner
from gateway.cluster.relay import IncidentRelay
from gateway.runtime.anpr import restore_passes
from gateway.store.base import StepScope, StoreError
from gateway.store.postgres import PostgresStore

if TYPE_CHECKING:
    from gateway.runtime.app import App

log = logging.getLogger(__name__)

__all__ = ["ClusterRuntime"]

DRAIN_WITHIN = 5.0  # seconds to wait for a departing estate's queued input to be committed


class ClusterRuntime:
    def __init__(self, app: App) -> None:
        store = app.store
        if not isinstance(store, PostgresStore):
            raise TypeError("cluster mode needs the PostgreSQL store")
        self.app, self.store = app, store
        self.instance = app.config.gateway_id
        self.ownership = LeaseOwnership(
            store, self.instance, self.api_url, [e.id for e in app.config.estates], app.config.cluster, self
        )
        self.drivers: dict[str, list[asyncio.Task[None]]] = {}
        self.known = frozenset(e.id for e in app.config.estates)
        store.notify_origin = self.instance  # commits tell the other instances' live feeds
        self.relay = IncidentRelay(store, self.instance, app.live)
        self._relay_task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=app.config.cluster.forward_timeout)

    # -- what the rest of the App asks -------------------------------------------------------------
    def api_url(self) -> str:
        cfg = self.app.config
        if cfg.cluster.advertise_url:
            return cfg.cluster.advertise_url.rstrip("/")
        host = "127.0.0.1" if cfg.api.host in ("0.0.0.0", "::", "") else cfg.api.host
        return f"http://{host}:{self.app.api_port or cfg.api.port}"

    async def owner_of(self, estate: str) -> Owner:
        """Where a write for `estate` must go (gateway/cluster/forward.py). The lease view of the last
        cycle answers; when it names no live peer (a hand-over since), the lease table is read again."""
        if estate in self.ownership.owned or estate not in self.known:
            return Owner(here=True)  # ours, or no such estate: the route answers
        owner = self._peer(estate)
        if owner is None:
            with contextlib.suppress(StoreError):
                self.ownership.leases = {x.estate: x for x in await self.store.estate_leases()}
            owner = self._peer(estate)
        return owner or Owner(here=False, retry_after=self.app.config.cluster.lease_seconds)

    def _peer(self, estate: str) -> Owner | None:
        lease = self.ownership.leases.get(estate)
        peer = self.ownership.instances.get(lease.owner) if lease and lease.owner else None
        if peer is not None and peer.live and peer.instance != self.instance and peer.api_url:
            return Owner(here=False, url=peer.api_url)
        return None

    async def post_to(self, url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        sent = {k: v for k, v in headers.items() if k.lower() in ("authorization", "cookie", "x-csrf-token")}
        sent[FORWARDED_HEADER] = self.instance
        try:
            answer = await self._http.post(url.rstrip("/") + path, json=body, headers=sent)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"{url}: {exc}") from exc
        if answer.status_code != 200:
            raise ConnectionError(f"{url}{path}: HTTP {answer.status_code}")
        return answer.json()

    def view(self) -> dict[str, Any]:
        """The cluster as this instance saw it at its last cycle (GET /cluster)."""
        own = self.ownership
        return {
            "instance": self.instance,
            "api_url": self.api_url(),
            "owned": sorted(own.owned),
            "fair_share": own.fair_share(),
            "lease_seconds": self.app.config.cluster.lease_seconds,
            "instances": [
                {"instance": i.instance, "api_url": i.api_url, "live": i.live, "seen_at": i.seen_at}
                for i in own.instances.values()
            ],
            "leases": [
                {"estate": x.estate, "owner": x.owner, "epoch": x.epoch, "expires_at": x.expires_at}
                for x in own.leases.values()
            ],
            "events": [{"at": at, "what": what, "estates": list(e)} for at, what, e in own.stats.events],
            **self.health(),
        }

    def owned(self) -> frozenset[str]:
        return frozenset(self.ownership.owned)

    def scope(self) -> StepScope:
        return StepScope(self.instance, self.owned())

    def health(self) -> dict[str, Any]:
        stats = self.ownership.stats
        return {
            "cluster_instance": self.instance,
            "cluster_estates_owned": len(self.ownership.owned),
            "cluster_live_instances": len(self.ownership.live),
            "cluster_fair_share": self.ownership.fair_share(),
            "cluster_claimed": stats.claimed,
            "cluster_handed_over": stats.handed_over,
            "cluster_lost": stats.lost,
            "cluster_renew_failures": stats.renew_failures,
            "cluster_last_adopt_s": round(stats.last_adopt_s, 3),
            **self.relay.health(),
        }

    # -- EstateHandler -----------------------------------------------------------------------------
    async def adopt(self, estates: set[str], live: list[str]) -> None:
        app, owned = self.app, self.owned()
        released = await self.store.release_firing(StepScope(self.instance, frozenset(estates)), live)
        if released:
            log.warning("cluster: %d escalation steps of %s were left firing by a dead owner; sending again",
                        released, ", ".join(sorted(estates)))  # fmt: skip
        keys = [k for k in await app.service.own(owned) if k.split("/", 1)[0] in estates]
        if app.egress is not None:  # the broker's retained copies: a dead owner's last may not have gone out
            app.egress.republish(i for i in app.service.manager.by_id.values() if i.estate in estates)
        stored = await self.store.load_windows()
        windows = {k: v for k, v in stored.items() if k.split("/", 1)[0] in estates}
        app.engine.reset_estates(estates)
        app.engine.restore_active(keys)
        app.engine.restore_windows(windows)
        app.engine.watch_estates(owned)
        app.device_state.restore_alarms(
            (i.estate, i.device, i.key, i.rule.priority)
            for i in app.engine.instances
            if i.active and i.estate in estates
        )
        app.kpi.reset(estates)
        app.kpi.owned = owned
        await app.kpi.load(estates)
        app.kpi.restore_active(keys)
        for tracker in (app.rounds.patrol, app.rounds.maintenance):  # guard tours, maintenance duties
            if tracker is not None:
                tracker.forget(estates)
                await tracker.load(estates)
        passes = [p for p in await self.store.load_visitor_passes(app.clock.now()) if p.estate in estates]
        for estate in estates:  # visitor passes the previous owner's API added or deleted
            if (registry := app.registries.get(estate)) is not None:
                registry.drop_stored_passes()
        restore_passes(app.registries, passes)
        for estate in sorted(estates):
            devices = [d for d in app.devices if d.estate == estate]
            tasks = app._driver_tasks(devices, estate)
            self.drivers[estate] = [app.start_driver(name, factory) for name, factory in tasks.items()]
        log.info("cluster: %s adopted: %d alarms active, %d drivers started", ", ".join(sorted(estates)),
                 len(keys), sum(len(self.drivers[e]) for e in estates))  # fmt: skip

    async def shed(self, estates: set[str], lost: bool) -> None:
        app, remaining = self.app, self.owned()
        tasks = [t for e in estates for t in self.drivers.pop(e, [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        for key in [k for k in app.commanders if k[0] in estates]:
            del app.commanders[key]
        for estate in estates:
            app.estate_ingress.pop(estate, None)
        if not lost:  # the lease still holds: commit what these estates already queued, save their KPIs
            for _ in range(int(DRAIN_WITHIN / 0.02)):  # bounded: a store outage must not hold the shed
                if not app.queue.depth:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(app.pipeline.tick_interval * 2)  # the batch in hand, if any
            with contextlib.suppress(Exception):
                await app.kpi.save()
        app.kpi.owned = remaining
        app.kpi.reset(estates)
        for tracker in (app.rounds.patrol, app.rounds.maintenance):
            if tracker is not None:
                tracker.forget(estates)
        app.engine.watch_estates(remaining)
        app.engine.reset_estates(estates)
        try:
            await app.service.own(remaining)
        except StoreError as exc:
            log.warning("cluster: incident view of the remaining estates is rebuilt later (%s)", exc)
        how = "lost" if lost else "handed over"
        log.info("cluster: %s stopped here (%s)", ", ".join(sorted(estates)), how)

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Before the first cycle: nothing is owned (the engine watches no device for absence)."""
        self.app.engine.watch_estates(frozenset())
        self.app.kpi.owned = frozenset()
        for tracker in (self.app.rounds.patrol, self.app.rounds.maintenance):
            if tracker is not None:
                tracker.owns = self.ownership.owns
                tracker.forget(self.known)
        await self.app.service.own(frozenset())
        self._relay_task = asyncio.create_task(self.relay.run(), name="cluster-listen")

    async def stop(self) -> None:
        """At shutdown, once the drivers are stopped and the queue committed: release every lease."""
        for tasks in self.drivers.values():
            for task in tasks:
                task.cancel()
        if self._relay_task is not None:
            self._relay_task.cancel()
            await asyncio.gather(self._relay_task, return_exceptions=True)
        await self.ownership.stop()
        await self._http.aclose()

    def driver_tasks(self) -> list[asyncio.Task[None]]:
        return [t for tasks in self.drivers.values() for t in tasks]
