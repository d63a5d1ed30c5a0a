"""A Modbus profile's poll worked out once: its blocks, and for each block how its words become values.

Every device of a profile reads the same blocks and decodes the same points from the same offsets on
every poll; all of that is fixed by the profile, so it is planned once per profile (`PollPlan.of`,
shared by its devices while the profile lives) and a poll only runs the plan: no slice, no lookup by
name, no intermediate result per point.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

from drivers.blocks import plan_blocks
from drivers.profiles.schema import ModbusProfile
from drivers.registers import ValueDecoder, point_decoder


class Slot(NamedTuple):
    """One point of a block: where its words start in the block's, and how to decode them."""

    name: str
    unit: str
    decode: ValueDecoder
    first: int  # the point's first word within the block's words
    decimals_from: str | None  # the point whose value (same poll) gives the decimal places
    later: bool  # decimals_from comes later in the poll: decode this after all the others


class PollPlan:
    """A profile's blocks (`plan_blocks`) and their slots, in block and address order.

    A point with `decimals_from` needs that point's value first: where the source comes earlier in the
    poll (as in every library profile) it is decoded in its place; where it comes later, after all the
    others (`Slot.later`), so its reading follows theirs."""

    @classmethod
    def of(cls, profile: ModbusProfile) -> PollPlan:
        plan = _SHARED.get(id(profile))
        if plan is None:
            plan = _SHARED[id(profile)] = cls(profile)
            weakref.finalize(profile, _SHARED.pop, id(profile), None)  # gone with its profile
        return plan

    def __init__(self, profile: ModbusProfile) -> None:
        self.blocks = plan_blocks(profile)
        self.slots: list[tuple[Slot, ...]] = []  # per block; empty for the alarm-nibble block
        seen: set[str] = set()
        for block in self.blocks:
            slots = []
            for point in block.points:
                source = point.decimals_from
                slots.append(
                    Slot(
                        point.name,
                        point.unit,
                        point_decoder(point, profile),
                        point.address - block.address,
                        source,
                        source is not None and source not in seen,
                    )
                )
                seen.add(point.name)
            self.slots.append(tuple(slots))


_SHARED: dict[int, PollPlan] = {}  # by id(profile), while that profile lives
