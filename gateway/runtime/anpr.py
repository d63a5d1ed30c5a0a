"""Wire the estates' vehicle registries, pushing cameras and barrier relays from the config.

A camera's "open" decision reaches its lane's relay as a command like any other: executed by the
relay's PulseCommander and written to the audit trail with the camera as the actor. One open at a time
per barrier: a second read while the arm is still going up adds nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from drivers.anpr.classifier import PlateClassifier, Verdict
from drivers.anpr.push import PushDecoder
from drivers.anpr.receiver import PictureSink, PushCamera
from drivers.anpr.registry import Category, Vehicle, VehicleRegistry
from drivers.commands import Commander
from drivers.profiles import HttpPushProfile
from drivers.stats import StatsRegistry
from gateway.config import EstateConfig, GatewayConfig
from gateway.model import AuditEntry, Clock, VisitorPass
from gateway.runtime.build import BoundDevice

log = logging.getLogger(__name__)
Audit = Callable[[AuditEntry], Awaitable[None]]


def _epoch(moment: datetime | None, zone: ZoneInfo) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def build_registry(estate: EstateConfig) -> VehicleRegistry:
    """The estate's registry from its config; naive pass times are the estate's local time."""
    zone = ZoneInfo(estate.timezone)
    vehicles = estate.vehicles
    registry = VehicleRegistry(unknown_entry=vehicles.unknown_entry)
    for category, entries in (
        (Category.RESIDENT, vehicles.residents),
        (Category.VISITOR, vehicles.visitors),
        (Category.BLACKLISTED, vehicles.blacklist),
    ):
        for entry in entries:
            registry.add(
                Vehicle(entry.plate, category, entry.label, _epoch(entry.valid_from, zone),
                        _epoch(entry.valid_until, zone))
            )  # fmt: skip
    return registry


class BarrierOpener:
    """Pulses a lane's relay for a camera's open decision, audited, one at a time per barrier."""

    def __init__(self, commanders: dict[tuple[str, str], Commander], audit: Audit, clock: Clock) -> None:
        self.commanders, self.audit, self.clock = commanders, audit, clock
        self.opened = 0
        self.failed = 0
        self._busy: dict[tuple[str, str], asyncio.Task[None]] = {}

    def for_camera(self, estate: str, camera: str, barrier: str) -> Callable[[Verdict], None]:
        def open_for(verdict: Verdict) -> None:
            key = (estate, barrier)
            running = self._busy.get(key)
            if running is not None and not running.done():
                return
            self._busy[key] = asyncio.create_task(self._open(estate, camera, barrier, verdict))

        return open_for

    async def _open(self, estate: str, camera: str, barrier: str, verdict: Verdict) -> None:
        commander = self.commanders.get((estate, barrier))
        if commander is None:
            outcome, detail = "failed", "the barrier relay has no commander (not started?)"
        else:
            result = await commander.execute("open")
            outcome, detail = result.outcome, result.detail
        if outcome == "ok":
            self.opened += 1
        else:
            self.failed += 1
            log.warning("%s/%s: opening for %s failed: %s", estate, barrier, verdict.decision.plate, detail)
        entry = AuditEntry(
            self.clock.now(), f"anpr:{camera}", "", "command:open", estate, barrier, outcome,
            {"plate": verdict.decision.plate, "reason": verdict.decision.detail, "detail": detail},
        )  # fmt: skip
        try:
            await self.audit(entry)
        except Exception:  # the audit must not take the opener down; the store logs its own failure
            log.exception("%s/%s: audit of an automatic open failed", estate, barrier)

    async def close(self) -> None:
        tasks = [t for t in self._busy.values() if not t.done()]
        for task in tasks:
            task.cancel()  # the commander still writes the relay OFF (shielded)
        await asyncio.gather(*tasks, return_exceptions=True)


def classifier_for(bound: BoundDevice, registries: dict[str, VehicleRegistry]) -> PlateClassifier:
    return PlateClassifier(registries[bound.estate], bound.config.lane_direction)


def push_cameras(
    devices: list[BoundDevice],
    registries: dict[str, VehicleRegistry],
    stats: StatsRegistry,
    opener: BarrierOpener,
    pictures: PictureSink | None = None,
) -> list[PushCamera]:
    cameras = []
    for bound in devices:
        cfg, profile = bound.config, bound.profile
        if not isinstance(profile, HttpPushProfile) or cfg.http_push is None:
            continue
        cameras.append(
            PushCamera(
                bound.estate,
                cfg.id,
                cfg.http_push.token,
                PushDecoder(bound.estate, cfg.id, profile, bound.timezone),
                classifier_for(bound, registries),
                stats.for_device(bound.estate, cfg.id),
                frozenset(cfg.http_push.allow_from),
                opener.for_camera(bound.estate, cfg.id, cfg.barrier) if cfg.barrier else None,
                pictures=pictures,
            )
        )
    return cameras


def registries_of(config: GatewayConfig) -> dict[str, VehicleRegistry]:
    return {estate.id: build_registry(estate) for estate in config.estates}


def restore_passes(registries: dict[str, VehicleRegistry], passes: list[VisitorPass]) -> None:
    """Visitor passes registered through the API before a restart: back into their registries."""
    for record in passes:
        registry = registries.get(record.estate)
        if registry is not None:
            registry.add(
                Vehicle(
                    record.plate,
                    Category.VISITOR,
                    record.label,
                    record.valid_from,
                    record.valid_until,
                    record.id,
                )
            )
