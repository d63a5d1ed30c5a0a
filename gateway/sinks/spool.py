"""A bounded on-disk FIFO of line-protocol batches: where points wait while InfluxDB is down or slow.

Layout: a folder of append-only segment files `<id>.seg` (ids sort oldest first). Each record is one batch:

    header (24 bytes, little-endian): magic b"EG", flag (0 live, 1 consumed), pad,
                                      points u32, length u32, crc32 u32, enqueued f64 (wall s)
    payload (length bytes):           the batch's lines, UTF-8, joined by newlines

The CRC covers points, length, enqueued and the payload. A record is consumed by flipping its flag in place
(one byte), so a restart replays only what was not written yet; a segment whose records are all consumed
is deleted. Opening the spool scans every segment: a torn tail (a crash mid-append) or a record that fails
its CRC is skipped, counted in `corrupt_records`/`corrupt_bytes`, and the segment is cut at the first
record whose framing cannot be trusted.

Bound: `max_bytes` of live records. When an append does not fit, `drop_oldest` evicts the oldest records
until it does, `drop_newest` refuses the new batch; either way the points are counted in `dropped` by
reason. A batch put back at the front (`prepend`: a write that failed) is the oldest data, so when it does
not fit it is the one dropped, under both policies.

Durability: appends are written at once (the OS has them if the process dies); `sync()` fsyncs them (the
sink calls it every `fsync_interval`, so a power cut loses at most that much). A record written to the
server but not yet marked consumed when the process dies is written again after the restart: InfluxDB
keeps one point per series and timestamp, so the replay is idempotent there.

Thread safety: one lock guards the state and the files. The sink runs the slow calls (`peek`, `pop`,
`sync`, big appends) in a worker thread and small spills on the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = ["Overflow", "Spool", "SpoolBatch", "SpoolError"]

Overflow = Literal["drop_oldest", "drop_newest"]
_HEADER = struct.Struct("<2sBxIIId")
_SUMMED = struct.Struct("<IId")  # the header fields under the CRC
_MAGIC = b"EG"
_LIVE, _CONSUMED = 0, 1
_FIRST_ID = 10**12  # ids below are left for batches put back at the front
_SUFFIX = ".seg"


class SpoolError(OSError):
    """The spool folder cannot be used (permissions, disk)."""


@dataclass(slots=True, frozen=True)
class _Record:
    segment: int
    offset: int
    size: int  # header + payload
    points: int
    enqueued: float


@dataclass(slots=True, frozen=True)
class SpoolBatch:
    """The oldest batch, read but not yet consumed: `pop(batch)` once the server has it."""

    record: _Record
    payload: bytes

    @property
    def points(self) -> int:
        return self.record.points


class Spool:
    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        overflow: Overflow = "drop_oldest",
        segment_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.segment_bytes = segment_bytes or max(64 * 1024, min(4 * 1024 * 1024, max_bytes // 8))
        self.clock = clock
        self.points = 0  # live points
        self.bytes = 0  # live record bytes (what the bound counts)
        self.appended = 0  # points ever accepted
        self.dropped: dict[str, int] = {"drop_oldest": 0, "drop_newest": 0, "corrupt": 0}
        self.corrupt_records = 0
        self.corrupt_bytes = 0
        self._records: deque[_Record] = deque()
        self._live: dict[int, int] = {}  # segment id → live records in it
        self._sizes: dict[int, int] = {}  # segment id → file size
        self._tail: BinaryIO | None = None  # the newest segment, open for appends
        self._tail_id: int | None = None
        self._dirty_dir = False
        self._lock = threading.Lock()
        self._opened = False

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> Spool:
        """Create the folder or load what a previous run left, oldest first."""
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                for path in sorted(self.folder.glob(f"*{_SUFFIX}"), key=_segment_id):
                    self._load(path)
            except OSError as exc:
                raise SpoolError(f"spool folder {self.folder}: {exc}") from exc
            self._opened = True
        return self

    def _load(self, path: Path) -> None:
        segment = _segment_id(path)
        data = path.read_bytes()
        offset, live = 0, 0
        while offset < len(data):
            record, size = _parse(data, offset, segment)
            if size == 0:  # framing lost: the rest of the file cannot be read
                self.corrupt_records += 1
                self.corrupt_bytes += len(data) - offset
                with path.open("r+b") as f:
                    f.truncate(offset)
                break
            if record is None:  # a whole record that fails its CRC: skip it
                self.corrupt_records += 1
                self.corrupt_bytes += size
                self.dropped["corrupt"] += _HEADER.unpack_from(data, offset)[2]
                self._mark(segment, offset)
            elif data[offset + 2] == _LIVE:
                self._records.append(record)
                self.points += record.points
                self.bytes += record.size
                live += 1
            offset += size
        if live == 0:
            path.unlink()
            return
        self._live[segment] = live
        self._sizes[segment] = offset

    def close(self) -> None:
        self.sync()
        with self._lock:
            if self._tail is not None:
                self._tail.close()
                self._tail, self._tail_id = None, None
            self._opened = False

    # -- writing ---------------------------------------------------------------------------------
    def append(self, lines: Sequence[str], enqueued: float | None = None) -> int:
        """Add a batch at the end (the newest data); returns the points kept (0: dropped by the bound)."""
        return self._add(lines, enqueued, front=False)

    def prepend(self, lines: Sequence[str], enqueued: float | None = None) -> int:
        """Put a batch back at the front: it is older than everything spooled (a write that failed)."""
        return self._add(lines, enqueued, front=True)

    def _add(self, lines: Sequence[str], enqueued: float | None, front: bool) -> int:
        if not lines:
            return 0
        payload = "\n".join(lines).encode()
        points, stamp = len(lines), self.clock() if enqueued is None else enqueued
        size = _HEADER.size + len(payload)
        with self._lock:
            if not self._fits(size, front, points):
                return 0
            blob = _frame(points, stamp, payload)
            if front:
                segment = (min(self._live) if self._live else _FIRST_ID) - 1
                path = self.folder / _name(segment)
                try:
                    with path.open("wb") as f:
                        f.write(blob)
                except OSError:  # disk full: leave no torn record behind
                    path.unlink(missing_ok=True)
                    raise
                self._dirty_dir = True
                record = _Record(segment, 0, size, points, stamp)
                self._records.appendleft(record)
                self._sizes[segment] = size
            else:
                segment, offset = self._tail_for(size)
                self._write_tail(blob, offset)
                record = _Record(segment, offset, size, points, stamp)
                self._records.append(record)
                self._sizes[segment] = offset + size
            self._live[segment] = self._live.get(segment, 0) + 1
            self.points += points
            self.bytes += size
            self.appended += points
            return points

    def _fits(self, size: int, front: bool, points: int) -> bool:
        """Apply the bound before adding `size` bytes; False when the new batch is the one dropped."""
        if self.bytes + size <= self.max_bytes:
            return True
        if front or self.overflow == "drop_newest" or size > self.max_bytes:
            self.dropped[self.overflow] += points
            return False
        while self._records and self.bytes + size > self.max_bytes:
            record = self._records.popleft()
            self.dropped["drop_oldest"] += record.points
            self._consume(record)
        return True

    def _tail_for(self, size: int) -> tuple[int, int]:
        """The segment to append to and the offset the record lands at; rolls to a new one when full."""
        if self._tail_id is None:
            newest = max(self._live, default=_FIRST_ID - 1)
            self._tail_id = max(newest, _FIRST_ID - 1) + 1
            self._open_tail()
        elif self._sizes.get(self._tail_id, 0) + size > self.segment_bytes and self._sizes.get(self._tail_id):
            assert self._tail is not None
            self._tail.close()
            self._tail_id += 1
            self._open_tail()
        assert self._tail_id is not None
        return self._tail_id, self._sizes.get(self._tail_id, 0)

    def _open_tail(self) -> None:
        assert self._tail_id is not None
        try:
            self._tail = (self.folder / _name(self._tail_id)).open("ab", buffering=0)
        except OSError:  # the next append picks a fresh segment id again
            self._tail, self._tail_id = None, None
            raise
        self._sizes[self._tail_id] = 0
        self._dirty_dir = True

    def _write_tail(self, blob: bytes, offset: int) -> None:
        """Append one record whole or not at all. An unbuffered write on a full disk can be short without
        raising; a torn record would shift every later offset, so the tail is cut back to `offset`."""
        assert self._tail is not None
        try:
            written = self._tail.write(blob)
            if written != len(blob):
                raise OSError(errno.ENOSPC, f"short write to the spool ({written} of {len(blob)} bytes)")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._tail.fileno(), offset)
            raise

    # -- reading ---------------------------------------------------------------------------------
    def peek(self) -> SpoolBatch | None:
        """The oldest live batch, read from disk; it stays in the spool until `pop`."""
        with self._lock:
            if not self._records:
                return None
            record = self._records[0]
            with (self.folder / _name(record.segment)).open("rb") as f:
                f.seek(record.offset + _HEADER.size)
                payload = f.read(record.size - _HEADER.size)
            return SpoolBatch(record, payload)

    def pop(self, batch: SpoolBatch) -> bool:
        """Consume a batch the server has taken. False when the bound evicted it meanwhile."""
        with self._lock:
            if not self._records or self._records[0] != batch.record:
                return False
            self._consume(self._records.popleft())
            return True

    def _consume(self, record: _Record) -> None:
        """Take a record off the books and off the disk (its flag, then its file when all are consumed)."""
        self.points -= record.points
        self.bytes -= record.size
        left = self._live[record.segment] - 1
        if left:
            self._live[record.segment] = left
            self._mark(record.segment, record.offset)
            return
        del self._live[record.segment]
        del self._sizes[record.segment]
        if record.segment == self._tail_id and self._tail is not None:
            self._tail.close()
            self._tail, self._tail_id = None, None
        (self.folder / _name(record.segment)).unlink(missing_ok=True)
        self._dirty_dir = True

    def _mark(self, segment: int, offset: int) -> None:
        with (self.folder / _name(segment)).open("r+b") as f:
            f.seek(offset + 2)
            f.write(bytes([_CONSUMED]))

    @property
    def oldest_enqueued(self) -> float | None:
        """Wall time the oldest live batch was enqueued (for the sink's lag)."""
        records = self._records
        return records[0].enqueued if records else None

    def sync(self) -> None:
        """fsync the open segment (and the folder after files came or went)."""
        with self._lock:
            fd = os.dup(self._tail.fileno()) if self._tail is not None else None
            dirty, self._dirty_dir = self._dirty_dir, False
        try:
            if fd is not None:
                os.fsync(fd)
            if dirty and self.folder.exists():
                dir_fd = os.open(self.folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        finally:
            if fd is not None:
                os.close(fd)


def _name(segment: int) -> str:
    return f"{segment:020d}{_SUFFIX}"


def _segment_id(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return -1


def _frame(points: int, enqueued: float, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(_SUMMED.pack(points, len(payload), enqueued)))
    return _HEADER.pack(_MAGIC, _LIVE, points, len(payload), crc, enqueued) + payload


def _parse(data: bytes, offset: int, segment: int) -> tuple[_Record | None, int]:
    """(record, size) of the record at `offset`; (None, size) when it fails its CRC; (None, 0) when its
    framing cannot be trusted (bad magic or flag, cut short)."""
    if len(data) - offset < _HEADER.size:
        return None, 0
    magic, flag, points, length, crc, enqueued = _HEADER.unpack_from(data, offset)
    size = _HEADER.size + length
    if magic != _MAGIC or flag not in (_LIVE, _CONSUMED) or offset + size > len(data):
        return None, 0
    payload = data[offset + _HEADER.size : offset + size]
    if zlib.crc32(payload, zlib.crc32(_SUMMED.pack(points, length, enqueued))) != crc:
        return None, size
    return _Record(segment, offset, size, points, enqueued), size
