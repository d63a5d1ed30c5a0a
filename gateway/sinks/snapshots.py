"""What the sink's periodic snapshots read from the running gateway."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from gateway.incidents import IncidentService
from gateway.model import Priority

__all__ = ["open_incident_counts"]


def open_incident_counts(service: IncidentService, estates: Iterable[str]) -> list[tuple[str, str, int]]:
    """(estate, priority, count) of unresolved incidents, with a 0 for every estate and priority that has
    none: a dashboard's "open now" must fall back to zero, not hold the last count it saw."""
    counts = Counter((i.estate, str(i.priority)) for i in service.manager.by_id.values())
    known = set(estates) | {estate for estate, _ in counts}
    return [(estate, str(p), counts.get((estate, str(p)), 0)) for estate in sorted(known) for p in Priority]
