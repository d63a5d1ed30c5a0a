"""Plate and scene pictures on disk: written off the event loop, found by time, deleted by retention.

    decoder ─accept()─▶ bounded queue ─▶ writer task ─to_thread─▶ <dir>/<estate>/<device>/<YYYYMMDD>/
                       (full: dropped, counted)                  <ts_ms>-<kind>-<plate hex>.jpg | .url

`accept` only names the files and queues the work, so a camera's reply never waits for a disk; the name
is known at once, so the plate event records where its pictures are. A picture the camera only links
(a URL) is kept as a small `.url` file beside the others, so one folder listing finds both. Names carry
the event time and the plate, so finding an incident's pictures needs no index: list the device's
folders for the days around the alarm. Retention deletes by age, then the oldest first until the folder
is under its byte bound.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.evidence.config import EvidenceConfig
from gateway.model import Clock

__all__ = ["KINDS", "Picture", "PictureStats", "PictureStore"]

log = logging.getLogger(__name__)
KINDS = ("plate", "scene")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME = re.compile(r"^(?P<ms>\d{10,14})-(?P<kind>plate|scene)-(?P<plate>[0-9a-f]{0,64})\.(?P<ext>jpg|url)$")
_DAY = re.compile(r"^\d{8}$")
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@dataclass(frozen=True)
class Picture:
    """One stored picture (a file of ours) or a camera's link to one (`url`)."""

    estate: str
    device: str
    ref: str  # "<YYYYMMDD>/<file name>", what the API route takes
    kind: str
    ts: float  # event time, epoch s
    plate: str
    url: str | None = None  # the camera's own URL: a link, never fetched by us


@dataclass
class PictureStats:
    stored: int = 0
    linked: int = 0  # URL-only pictures recorded
    dropped_queue_full: int = 0
    dropped_too_large: int = 0
    dropped_not_image: int = 0
    write_errors: int = 0
    deleted: int = 0
    deleted_bytes: int = 0


@dataclass(frozen=True)
class _Job:
    path: Path
    data: str  # base64 text, or the URL for a .url file
    is_url: bool


def _plate_hex(plate: str) -> str:
    return plate.encode("utf-8")[:32].hex()


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


class PictureStore:
    def __init__(self, root: Path, config: EvidenceConfig, clock: Clock) -> None:
        self.root, self.config, self.clock = root, config, clock
        self.stats = PictureStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(config.queue)

    # -- hot path ----------------------------------------------------------------------------------
    def accept(self, estate: str, device: str, ts_ns: int, plate: str, raw: dict[str, str]) -> dict[str, str]:
        """Queue a plate read's pictures (kind → base64 or URL); returns kind → ref of those taken.

        Cheap on purpose (no decoding, no I/O): it runs in the decoder, on the event loop."""
        refs: dict[str, str] = {}
        if not (_SEGMENT.match(estate) and _SEGMENT.match(device)):
            return refs
        ms = ts_ns // 1_000_000
        day = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%d")
        for kind, data in raw.items():
            if kind not in KINDS or not isinstance(data, str) or not data:
                continue
            is_url = _is_url(data)
            if is_url and len(data) > 2000:
                self.stats.dropped_not_image += 1
                continue
            if not is_url and len(data) * 3 // 4 > self.config.max_picture_bytes:
                self.stats.dropped_too_large += 1
                continue
            name = f"{ms}-{kind}-{_plate_hex(plate)}.{'url' if is_url else 'jpg'}"
            try:
                self._queue.put_nowait(_Job(self.root / estate / device / day / name, data, is_url))
            except asyncio.QueueFull:
                self.stats.dropped_queue_full += 1
                if self.stats.dropped_queue_full & 0xFF == 1:
                    log.warning("evidence: picture writer behind; dropping pictures (%d so far)",
                                self.stats.dropped_queue_full)  # fmt: skip
                continue
            refs[kind] = data if is_url else f"{day}/{name}"
        return refs

    # -- writer and retention ----------------------------------------------------------------------
    async def run(self) -> None:
        """Write queued pictures and apply retention every `cleanup_interval` s, until cancelled."""
        cleaner = asyncio.create_task(self._clean_forever(), name="evidence-retention")
        try:
            while True:
                job = await self._queue.get()
                await asyncio.to_thread(self._write, job)
        finally:
            cleaner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cleaner

    async def drain(self) -> None:
        """Write what is queued now (tests, shutdown)."""
        while not self._queue.empty():
            await asyncio.to_thread(self._write, self._queue.get_nowait())

    async def _clean_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            try:
                await asyncio.to_thread(self.cleanup)
            except OSError:
                log.exception("evidence: retention pass failed")

    def _write(self, job: _Job) -> None:
        if job.is_url:
            payload = job.data.encode()
        else:
            try:
                payload = base64.b64decode(job.data, validate=False)
            except (binascii.Error, ValueError):
                self.stats.dropped_not_image += 1
                return
            if not payload.startswith(_IMAGE_MAGIC):
                self.stats.dropped_not_image += 1
                return
        try:
            job.path.parent.mkdir(parents=True, exist_ok=True)
            partial = job.path.with_suffix(".part")
            partial.write_bytes(payload)
            partial.replace(job.path)  # a reader never sees half a picture
        except OSError as exc:
            self.stats.write_errors += 1
            if self.stats.write_errors & 0xFF == 1:
                log.warning("evidence: cannot write %s: %s", job.path, exc)
            return
        if job.is_url:
            self.stats.linked += 1
        else:
            self.stats.stored += 1

    def cleanup(self) -> tuple[int, int]:
        """Delete pictures older than the retention, then the oldest until under max_bytes.

        Returns (files, bytes) deleted in this pass."""
        cutoff_ms = (self.clock.now() - self.config.retention_days * 86400) * 1000
        files: list[tuple[int, int, Path]] = []  # (event ms, size, path)
        for path in self.root.glob("*/*/*/*"):
            match = _NAME.match(path.name)
            if match is None or not path.is_file():
                continue
            with contextlib.suppress(OSError):
                files.append((int(match["ms"]), path.stat().st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files)
        deleted = deleted_bytes = 0
        for ms, size, path in files:
            if ms >= cutoff_ms and total <= self.config.max_bytes:
                break  # sorted oldest first: everything after is younger and fits
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
            deleted, deleted_bytes = deleted + 1, deleted_bytes + size
        for day in self.root.glob("*/*/*"):
            with contextlib.suppress(OSError):
                day.rmdir()  # only empty ones go
        self.stats.deleted += deleted
        self.stats.deleted_bytes += deleted_bytes
        if deleted:
            log.info("evidence: retention deleted %d pictures (%d bytes)", deleted, deleted_bytes)
        return deleted, deleted_bytes

    # -- reading -----------------------------------------------------------------------------------
    def find(
        self, estate: str, device: str, start: float, end: float, plate: str | None = None
    ) -> list[Picture]:
        """Pictures of a device with event times in [start, end], optionally of one plate (blocking I/O)."""
        if not (_SEGMENT.match(estate) and _SEGMENT.match(device)):
            return []
        base = self.root / estate / device
        days = {datetime.fromtimestamp(t, UTC).strftime("%Y%m%d") for t in (start, end, (start + end) / 2)}
        found = []
        wanted = _plate_hex(plate) if plate else None
        for day in sorted(days):
            folder = base / day
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                match = _NAME.match(path.name)
                if match is None:
                    continue
                ts = int(match["ms"]) / 1000
                if not start <= ts <= end or (wanted is not None and match["plate"] != wanted):
                    continue
                url = None
                if match["ext"] == "url":
                    try:
                        url = path.read_text(encoding="utf-8").strip()
                    except OSError:
                        continue
                plate_text = bytes.fromhex(match["plate"]).decode("utf-8", "replace")
                found.append(
                    Picture(estate, device, f"{day}/{path.name}", match["kind"], ts, plate_text, url)
                )
        return found

    def file_of(self, estate: str, device: str, ref: str) -> Path | None:
        """The stored image a ref names, or None: refs are checked against the naming scheme, so no
        `..` or absolute path can reach outside the estate's folder."""
        day, _, name = ref.partition("/")
        match = _NAME.match(name)
        if not (_SEGMENT.match(estate) and _SEGMENT.match(device) and _DAY.match(day) and match):
            return None
        if match["ext"] != "jpg":
            return None
        path = self.root / estate / device / day / name
        return path if path.is_file() else None

    def health(self) -> dict[str, Any]:
        return {f"evidence_{k}": v for k, v in asdict(self.stats).items()} | {
            "evidence_queue": self._queue.qsize()
        }
