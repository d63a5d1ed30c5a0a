"""Comparing payload values with values written in YAML: event kinds, `when` conditions, payload routing.

A profile or a site file writes `5/75`, `lpr` or `405419896`; the payload carries 75, "lpr" or
405419896 as JSON numbers, strings or booleans. Both sides are compared by one text form, so a YAML
author never has to guess whether a code arrives quoted: 75 and "75" are the same key, true is "true",
and a whole float (5.0) is "5". Objects, lists and null have no text form and match nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from drivers.payload import MISSING, at

__all__ = ["as_text", "holds", "key_of"]


def as_text(value: Any) -> str | None:
    """The comparable text of a JSON scalar, or None when it has none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


def holds(data: Mapping[str, Any], conditions: Mapping[str, object]) -> bool:
    """True when every dotted path of `conditions` is present with an equal value (as text)."""
    for path, wanted in conditions.items():
        value = at(data, path)
        if value is MISSING or as_text(value) != as_text(wanted):
            return False
    return True


def key_of(data: Mapping[str, Any], paths: tuple[str, ...]) -> tuple[str, ...] | None:
    """The text of each path's value, or None when one is missing or has no text form."""
    out = []
    for path in paths:
        text = as_text(at(data, path))
        if text is None:
            return None
        out.append(text)
    return tuple(out)
