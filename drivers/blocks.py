"""Plan block reads: contiguous points of one table read together in as few requests as possible."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.profiles.schema import ModbusPoint, ModbusProfile


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers (or bits) from `address` of `table`."""

    table: str
    address: int
    count: int
    points: tuple[ModbusPoint, ...] = field(default=())


def plan_blocks(profile: ModbusProfile) -> list[Block]:
    """Group points by table; join neighbours when the gap is ≤ max_gap and the block stays ≤ max_block."""
    blocks: list[Block] = []
    by_table: dict[str, list[ModbusPoint]] = {}
    for point in profile.points:
        by_table.setdefault(point.table, []).append(point)
    for table, points in by_table.items():
        limit = profile.max_block if table in ("holding", "input") else 2000
        points.sort(key=lambda p: p.address)
        start = end = -1
        members: list[ModbusPoint] = []
        for point in points:
            p_end = point.address + point.words
            fits = members and point.address - end <= profile.max_gap and max(end, p_end) - start <= limit
            if fits:
                end = max(end, p_end)
                members.append(point)
                continue
            if members:
                blocks.append(Block(table, start, end - start, tuple(members)))
            start, end, members = point.address, p_end, [point]
        if members:
            blocks.append(Block(table, start, end - start, tuple(members)))
    if profile.alarm_nibbles:
        nib = profile.alarm_nibbles
        words = (len(nib.names) + 3) // 4
        first, last = (
            min(nib.count_address, nib.first_address),
            max(nib.count_address, nib.first_address + words),
        )
        blocks.append(Block("holding", first, last - first))
    return blocks
