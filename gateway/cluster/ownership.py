"""One instance's estate leases: claim a fair share, renew, hand extras over, stop before a lease runs out.

Each cycle (every `renew_every` seconds):
1. heartbeat: this instance is alive; the list of live instances comes back (seen within a lease period);
2. renew every lease held; an estate whose lease was taken over meanwhile is dropped at once;
3. fair share = ceil(estates this instance may own / live instances); above it, and while another live
   instance holds fewer than its share, the extras are handed over (stopped here, then released);
4. below it, free or expired leases are claimed (`prefer` ones first) and adopted.

Fencing without consensus: the lease ends `lease_seconds` after the database granted it, and this instance
stops an estate's drivers and escalation when `lease_seconds - margin` have passed since its last
successful renewal began (monotonic clock), i.e. before any other instance may take it over. A database
outage longer than that therefore stops this instance's estates; they are adopted again when it returns.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config.cluster import ClusterConfig
from gateway.store.postgres_cluster import EstateLease, InstanceRecord

log = logging.getLogger(__name__)

__all__ = ["EstateHandler", "LeaseOwnership", "LeaseStore", "OwnershipStats"]


class LeaseStore(Protocol):
    async def heartbeat(
        self, instance: str, api_url: str, ttl: float, starting: bool = False
    ) -> tuple[float, list[InstanceRecord]]: ...

    async def claim_estates(
        self, instance: str, candidates: Collection[str], limit: int, ttl: float
    ) -> dict[str, int]: ...

    async def renew_estates(self, instance: str, estates: Collection[str], ttl: float) -> set[str]: ...

    async def release_estates(self, instance: str, estates: Collection[str]) -> None: ...

    async def estate_leases(self) -> list[EstateLease]: ...


class EstateHandler(Protocol):
    """What the runtime does when estates arrive or leave (gateway/runtime/cluster.py)."""

    async def adopt(self, estates: set[str], live: list[str]) -> None:
        """Start processing these estates (load their state, start their drivers); `live`: instance ids."""

    async def shed(self, estates: set[str], lost: bool) -> None:
        """Stop processing them; `lost`: the lease is gone already (taken over or run out), so nothing of
        theirs may be committed any more."""


@dataclass
class OwnershipStats:
    claimed: int = 0
    handed_over: int = 0
    lost: int = 0  # taken over by another instance, or given up because renewals failed
    renew_failures: int = 0
    cycles: int = 0
    last_adopt_s: float = 0.0  # claim → drivers started, the last time estates arrived
    events: list[tuple[float, str, tuple[str, ...]]] = field(default_factory=list)  # (wall, what, estates)

    def note(self, what: str, estates: Iterable[str]) -> None:
        self.events.append((time.time(), what, tuple(sorted(estates))))
        del self.events[:-50]  # the last few changes, for /cluster


class LeaseOwnership:
    def __init__(
        self,
        store: LeaseStore,
        instance: str,
        api_url: Callable[[], str],
        estates: Iterable[str],
        config: ClusterConfig,
        handler: EstateHandler,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.instance, self.api_url = store, instance, api_url
        self.config, self.handler, self.monotonic = config, handler, monotonic
        allowed = [e for e in estates if any(fnmatch.fnmatchcase(e, p) for p in config.estates)]
        self.candidates = sorted(allowed)
        self.preferred = [e for e in self.candidates if any(fnmatch.fnmatchcase(e, p) for p in config.prefer)]
        self.owned: set[str] = set()
        self.live: list[InstanceRecord] = []
        self.instances: dict[str, InstanceRecord] = {}  # every instance the database knows, by id
        self.leases: dict[str, EstateLease] = {}  # the lease table as of the last cycle
        self.stats = OwnershipStats()
        self._renewed_at: float | None = None  # monotonic start of the last renewal that succeeded
        self._started = False
        self._lock = asyncio.Lock()  # one cycle at a time (the loop, and `stop`)

    @property
    def margin(self) -> float:
        """Stop an estate this long before its lease can run out at the database."""
        return min(self.config.renew_every, self.config.lease_seconds / 3)

    def owns(self, estate: str) -> bool:
        return estate in self.owned

    async def run(self) -> None:
        """Cycle until cancelled; an error costs one cycle (and, when renewals keep failing, the estates)."""
        while True:
            started = self.monotonic()
            await self.cycle()
            await asyncio.sleep(max(0.05, self.config.renew_every - (self.monotonic() - started)))

    async def cycle(self) -> None:
        async with self._lock:
            self.stats.cycles += 1
            began = self.monotonic()
            try:
                await self._cycle(began)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.renew_failures += 1
                log.warning("cluster: lease cycle failed (%s)", exc)
                await self._fence(began)

    async def _cycle(self, began: float) -> None:
        ttl = self.config.lease_seconds
        _, instances = await self.store.heartbeat(self.instance, self.api_url(), ttl, not self._started)
        self._started = True
        self.live = [i for i in instances if i.live]
        self.instances = {i.instance: i for i in instances}
        kept = await self.store.renew_estates(self.instance, self.owned, ttl) if self.owned else set()
        self._renewed_at = began
        if lost := self.owned - kept:
            log.error("cluster: leases of %s were taken over; stopping them here", ", ".join(sorted(lost)))
            await self._drop(lost, lost=True)
        share = self.fair_share()
        if len(self.owned) > share and self.config.balance:
            await self._hand_over(share)
        elif len(self.owned) < share:
            await self._claim(share - len(self.owned))
        self.leases = {lease.estate: lease for lease in await self.store.estate_leases()}

    def fair_share(self) -> int:
        live = max(1, len(self.live))
        return math.ceil(len(self.candidates) / live)

    async def _hand_over(self, share: int) -> None:
        """Give estates above the share to instances below theirs; none when no one is below (stable)."""
        counts: dict[str, int] = {i.instance: 0 for i in self.live}
        for lease in await self.store.estate_leases():
            if lease.owner in counts:
                counts[lease.owner] += 1
        room = sum(max(0, share - n) for owner, n in counts.items() if owner != self.instance)
        if room <= 0:
            return
        spare = [e for e in sorted(self.owned) if e not in self.preferred] + sorted(
            e for e in self.owned if e in self.preferred
        )
        extras = set(spare[: min(len(self.owned) - share, room)])
        log.info("cluster: handing over %s (share %d, live %d)", ", ".join(sorted(extras)), share,
                 len(self.live))  # fmt: skip
        await self._drop(extras, lost=False)
        await self.store.release_estates(self.instance, extras)
        self.stats.handed_over += len(extras)
        self.stats.note("handed_over", extras)

    async def _claim(self, want: int) -> None:
        ttl = self.config.lease_seconds
        claimed: dict[str, int] = {}
        for pool in (self.preferred, self.candidates):
            free = [e for e in pool if e not in self.owned and e not in claimed]
            if want - len(claimed) > 0 and free:
                claimed |= await self.store.claim_estates(self.instance, free, want - len(claimed), ttl)
        if not claimed:
            return
        started = self.monotonic()
        new = set(claimed)
        self.owned |= new
        self.stats.claimed += len(new)
        self.stats.note("claimed", new)
        log.info("cluster: now owns %s (epochs %s)", ", ".join(sorted(new)),
                 ", ".join(f"{e}:{claimed[e]}" for e in sorted(new)))  # fmt: skip
        try:
            await self.handler.adopt(new, [i.instance for i in self.live])
        except Exception:
            log.exception("cluster: starting %s failed; releasing them for another instance", sorted(new))
            await self._drop(new, lost=False)
            await self.store.release_estates(self.instance, new)
            raise
        self.stats.last_adopt_s = self.monotonic() - started

    async def _fence(self, began: float) -> None:
        """Renewal failed: keep the estates while the leases surely hold, stop them before they can end."""
        if not self.owned or self._renewed_at is None:
            return
        left = self.config.lease_seconds - self.margin - (self.monotonic() - self._renewed_at)
        if left > 0:
            log.warning("cluster: cannot renew; %.1fs left before stopping %d estates", left, len(self.owned))
            return
        log.error("cluster: leases could not be renewed in time; stopping %s", ", ".join(sorted(self.owned)))
        await self._drop(set(self.owned), lost=True)

    async def _drop(self, estates: set[str], lost: bool) -> None:
        self.owned -= estates
        if lost:
            self.stats.lost += len(estates)
            self.stats.note("lost", estates)
        try:
            await self.handler.shed(estates, lost)
        except Exception:
            log.exception("cluster: stopping %s failed", sorted(estates))

    async def stop(self) -> None:
        """At shutdown, after the runtime stopped the estates' drivers: release the leases at once, so
        another instance takes over without waiting for them to run out."""
        async with self._lock:
            owned, self.owned = set(self.owned), set()
            if owned:
                try:
                    await self.store.release_estates(self.instance, owned)
                    log.info("cluster: released %d estates", len(owned))
                except Exception as exc:
                    log.warning("cluster: could not release leases (%s); they run out in %.0fs", exc,
                                self.config.lease_seconds)  # fmt: skip
