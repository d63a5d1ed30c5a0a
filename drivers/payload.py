"""Reading values out of decoded JSON payloads: dotted paths and the scalars we keep as attributes."""

from __future__ import annotations

import math
from typing import Any, Final

MISSING: Final = object()  # a path that is not in the payload (None is a value: JSON null)


def at(data: Any, path: str) -> Any:
    """The value at a dotted path ('result.PlateResult.license'), or MISSING."""
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def plain_scalar(value: Any, max_text: int = 256) -> bool:
    """Attributes keep only small scalars: no nested objects (pictures), no NaN, no megabyte strings."""
    if isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= max_text
