"""Reading values out of decoded JSON payloads: dotted paths and the scalars we keep as attributes."""

from __future__ import annotations

import math
from typing import Any, Final

import orjson

from drivers.errors import DecodeError

MISSING: Final = object()  # a path that is not in the payload (None is a value: JSON null)


def at(data: Any, path: str) -> Any:
    """The value at a dotted path ('result.PlateResult.license'), or MISSING."""
    if "." not in path:  # most paths are one key: no list of parts to build (per point, per message)
        return data.get(path, MISSING) if isinstance(data, dict) else MISSING
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


def parse_object(payload: bytes) -> dict[str, Any]:
    """The payload as a JSON object, or DecodeError('bad_json' / 'not_object')."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_json", str(exc)[:80]) from exc
    if not isinstance(data, dict):
        raise DecodeError("not_object", type(data).__name__)
    return data
