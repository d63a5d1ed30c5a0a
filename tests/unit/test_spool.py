"""The sink's on-disk spool (gateway/sinks/spool.py): order, bound, restart, torn and corrupt records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.sinks.spool import Overflow, Spool


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Spool]]:
    """Open a spool on tmp_path; every spool opened is closed at the end of the test."""
    opened: list[Spool] = []

    def factory(*args: Any, **kwargs: Any) -> Spool:
        spool = Spool(tmp_path, *args, **kwargs).open()
        opened.append(spool)
        return spool

    yield factory
    for spool in opened:
        spool.close()


def _batch(start: int, n: int = 10) -> list[str]:
    return [f"m,estate=e1 value={i:04d} {10_000 + i}" for i in range(start, start + n)]  # fixed width


def _drain(spool: Spool) -> list[str]:
    out: list[str] = []
    for _ in range(10_000):
        batch = spool.peek()
        if batch is None:
            return out
        out.extend(batch.payload.decode().split("\n"))
        assert spool.pop(batch)
    raise AssertionError("spool did not drain")


def _record_size(n: int = 10) -> int:
    return 24 + len("\n".join(_batch(0, n)).encode())


def test_append_and_read_back_in_order(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(10_000_000, segment_bytes=2_000)  # small segments: many files
    for i in range(20):
        assert spool.append(_batch(i * 10)) == 10
    assert spool.points == 200 and spool.bytes > 0
    assert len(list(tmp_path.glob("*.seg"))) > 3
    assert _drain(spool) == _batch(0, 200)
    assert spool.points == 0 and spool.bytes == 0
    assert list(tmp_path.glob("*.seg")) == []  # consumed segments are deleted


def test_peek_leaves_the_batch_until_popped(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(1_000_000)
    spool.append(_batch(0))
    first = spool.peek()
    assert first is not None and spool.peek() == first and spool.points == 10
    assert spool.pop(first) and not spool.pop(first)


def test_prepend_goes_before_everything(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(1_000_000)
    spool.append(_batch(10))
    spool.append(_batch(20))
    spool.prepend(_batch(0))
    assert _drain(spool) == _batch(0, 30)


def test_survives_reopen_with_partial_consumption(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(1_000_000, segment_bytes=1_000)
    for i in range(6):
        spool.append(_batch(i * 10), enqueued=100.0 + i)
    spool.prepend(_batch(-10), enqueued=99.0)
    for _ in range(3):  # consume the prepended batch and the first two appended
        batch = spool.peek()
        assert batch is not None and spool.pop(batch)
    spool.close()
    again = make(1_000_000, segment_bytes=1_000)
    assert again.points == 40 and again.oldest_enqueued == 102.0
    again.append(_batch(60))  # appends after a restart go after what was left
    assert _drain(again) == _batch(20, 50)
    assert again.corrupt_records == 0


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
def test_bound_is_enforced_and_counted(make: Callable[..., Spool], overflow: Overflow) -> None:
    size = _record_size()
    spool = make(size * 3, overflow)  # room for three batches
    kept = [spool.append(_batch(i * 10)) for i in range(5)]
    assert spool.points == 30 and spool.bytes <= size * 3
    assert spool.dropped[overflow] == 20
    if overflow == "drop_oldest":
        assert kept == [10] * 5
        assert _drain(spool) == _batch(20, 30)
    else:
        assert kept == [10, 10, 10, 0, 0]
        assert _drain(spool) == _batch(0, 30)


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
def test_a_batch_put_back_when_full_is_the_one_dropped(
    make: Callable[..., Spool], overflow: Overflow
) -> None:
    spool = make(_record_size() * 2, overflow)
    spool.append(_batch(10))
    spool.append(_batch(20))
    assert spool.prepend(_batch(0)) == 0
    assert spool.dropped[overflow] == 10
    assert _drain(spool) == _batch(10, 20)


def test_a_batch_larger_than_the_bound_is_dropped(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(_record_size() * 2)
    spool.append(_batch(0))
    assert spool.append(_batch(100, 50)) == 0
    assert spool.dropped["drop_oldest"] == 50 and spool.points == 10


def test_bound_holds_across_reopen(make: Callable[..., Spool], tmp_path: Path) -> None:
    size = _record_size()
    spool = make(size * 2, "drop_newest")
    spool.append(_batch(0))
    spool.close()
    again = make(size * 2, "drop_newest")
    assert again.append(_batch(10)) == 10
    assert again.append(_batch(20)) == 0
    assert _drain(again) == _batch(0, 20)


def test_torn_tail_is_detected_skipped_and_counted(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(1_000_000)
    for i in range(3):
        spool.append(_batch(i * 10))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # the process died in the middle of the last append
    again = make(1_000_000)
    assert again.corrupt_records == 1 and again.corrupt_bytes == _record_size() - 7
    assert again.points == 20
    again.append(_batch(30))  # the file was cut where the torn record began: new appends are whole
    assert _drain(again) == _batch(0, 20) + _batch(30)


def test_torn_header_is_detected(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(1_000_000)
    spool.append(_batch(0))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    with segment.open("ab") as f:
        f.write(b"EG\x00")  # a few bytes of the next header
    again = make(1_000_000)
    assert again.corrupt_records == 1 and again.corrupt_bytes == 3
    assert _drain(again) == _batch(0)


def test_corrupt_record_in_the_middle_is_skipped(make: Callable[..., Spool], tmp_path: Path) -> None:
    spool = make(1_000_000)
    for i in range(3):
        spool.append(_batch(i * 10))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[_record_size() + 30] ^= 0xFF  # a flipped bit in the second record's payload
    segment.write_bytes(bytes(data))
    again = make(1_000_000)
    assert again.corrupt_records == 1 and again.dropped["corrupt"] == 10
    assert _drain(again) == _batch(0) + _batch(20)
    third = make(1_000_000)  # counted once: it is marked consumed
    assert third.corrupt_records == 0


def test_stray_files_are_ignored(make: Callable[..., Spool], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a segment")
    spool = make(1_000_000)
    spool.append(_batch(0))
    assert _drain(spool) == _batch(0)
