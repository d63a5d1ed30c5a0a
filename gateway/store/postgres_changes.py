"""Incident-change notices between instances on one PostgreSQL database (LISTEN/NOTIFY).

A commit that changed incidents sends, in its own transaction, one or more notices on `CHANGES_CHANNEL`:
JSON `{"o": origin instance, "c": [[incident id, new (0|1), timeline entries added], ...]}`, chunked to
stay far below PostgreSQL's 8,000-byte payload limit. A listener (gateway/cluster/relay.py) reads the
incidents back and shows them on its own live feed. The notice carries ids only: the store stays the truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.incidents.manager import IncidentChange

__all__ = ["CHANGES_CHANNEL", "ChangeNotice", "change_notices", "parse_notice"]

CHANGES_CHANNEL = "estate_gateway_incidents"
_CHUNK = 300  # changes per notice: ~20 bytes each, well under the 8,000-byte limit


@dataclass(frozen=True)
class ChangeNotice:
    origin: str
    changes: list[tuple[int, bool, int]]  # (incident id, new, timeline entries added)


def change_notices(origin: str, changes: Sequence[IncidentChange]) -> Iterator[str]:
    rows = [[c.incident.id, int(c.new), len(c.entries)] for c in changes if c.incident.id]
    for start in range(0, len(rows), _CHUNK):
        yield json.dumps({"o": origin, "c": rows[start : start + _CHUNK]}, separators=(",", ":"))


def parse_notice(payload: str) -> ChangeNotice | None:
    """The notice, or None for a payload this version does not understand (counted by the caller)."""
    try:
        data = json.loads(payload)
        return ChangeNotice(str(data["o"]), [(int(i), bool(n), int(e)) for i, n, e in data["c"]])
    except (ValueError, KeyError, TypeError):
        return None
