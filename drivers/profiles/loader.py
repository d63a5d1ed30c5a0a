"""Find and validate profiles: shipped ones beside this module, user ones from configured folders.

Errors name the file, the line and the key, e.g.
`septic_s16.yaml:14 points[2] (pressure).decimals_from: no point named 'decimal'`; a site table's rows
by the CSV's file and line, e.g. `notifier_site.csv:14 device: must be 1..159 (got 160)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from drivers.profiles.schema import AnyProfile, KeyedValueError, Profile
from drivers.profiles.site_table import SiteTableError, expand_site_table
from drivers.profiles.site_template import SiteTemplate

SHIPPED = Path(__file__).parent
_ADAPTER: TypeAdapter[AnyProfile] = TypeAdapter(Profile)
_TEMPLATE: TypeAdapter[SiteTemplate] = TypeAdapter(SiteTemplate)
Key = tuple[str | int, ...]


class ProfileError(Exception):
    """A profile is missing or invalid; the message names the file and the key."""


def load_profile_file(path: Path) -> AnyProfile:
    try:
        tree = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ProfileError(f"{path}{line}: YAML: {exc.problem}") from exc
    except (OSError, YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc}") from exc
    if not isinstance(tree, CommentedMap):
        raise ProfileError(f"{path}: a profile must be a mapping")
    lines: dict[Key, int] = {}
    data = _to_plain(tree, (), lines)
    data.setdefault("name", path.stem)
    if "site_table" in data or "site_template" in data:
        data = _with_site_table(data, path, lines)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = [_describe(err, data, lines, path) for err in exc.errors(include_url=False)]
        raise ProfileError("\n".join(problems)) from exc


def _with_site_table(data: dict[str, Any], path: Path, lines: dict[Key, int]) -> dict[str, Any]:
    """The profile with its site table's rows added to `points` (see site_table.py), so everything after
    the loader sees ordinary points."""
    table, template = data.get("site_table"), data.get("site_template")
    rest = {k: v for k, v in data.items() if k not in ("site_table", "site_template")}
    key = "site_template" if table is not None else "site_table"
    line = lines.get(("site_table",)) or lines.get(("site_template",))
    where = f"{path}:{line}" if line else str(path)
    if table is None or template is None:
        raise ProfileError(f"{where} {key}: give site_table (the CSV) and site_template together")
    if not isinstance(table, str):
        raise ProfileError(f"{where} site_table: a file name relative to this profile")
    if data.get("protocol") != "modbus":
        raise ProfileError(f"{where} site_table: site tables are for Modbus profiles")
    if not (path.parent / table).is_file():
        raise ProfileError(f"{where} site_table: no file {path.parent / table}")
    try:
        parsed = _TEMPLATE.validate_python(template)
    except ValidationError as exc:
        problems = [
            _describe(err, data, lines, path, ("site_template",)) for err in exc.errors(include_url=False)
        ]
        raise ProfileError("\n".join(problems)) from exc
    points = rest.get("points", [])
    if not isinstance(points, list):
        return rest  # reported by the schema
    taken = {str(p.get("name")) for p in points if isinstance(p, dict)}
    try:
        rest["points"] = [*points, *expand_site_table(path.parent / table, parsed, taken)]
    except SiteTableError as exc:
        raise ProfileError(str(exc)) from exc
    return rest


def _describe(err: Any, data: dict[str, Any], lines: dict[Key, int], path: Path, under: Key = ()) -> str:
    loc: Key = (*under, *err["loc"])
    # Tags of discriminated unions are in pydantic's loc but not in the file: the protocol at the top,
    # the form of a derived point below derived.<name>.
    if loc and loc[0] in ("modbus", "mqtt", "http_push"):
        loc = loc[1:]
    if len(loc) > 2 and loc[0] == "derived" and loc[2] in ("below", "scale"):
        loc = loc[:2] + loc[3:]
    if len(loc) > 2 and loc[0] == "channels" and loc[2] in ("event", "state", "heartbeat"):
        loc = loc[:2] + loc[3:]  # the channel's type tag
    if len(loc) > 3 and loc[:2] == ("site_template", "columns") and loc[3] in ("int", "word", "text"):
        loc = loc[:3] + loc[4:]  # the site-table column's type tag
    error = err.get("ctx", {}).get("error")
    if isinstance(error, KeyedValueError):
        loc = (*loc, *error.key)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key (check spelling)"
    elif err["type"] == "missing":
        message = "required key is missing"
    line = next((lines[loc[:cut]] for cut in range(len(loc), 0, -1) if loc[:cut] in lines), None)
    where = f"{path}:{line}" if line else str(path)
    return f"{where} {_format_key(loc, data)}: {message}" if loc else f"{where}: {message}"


def _format_key(loc: Key, data: dict[str, Any]) -> str:
    """`points[2] (pressure).decimals_from`: the index for the machine, the name for the engineer."""
    out = ""
    node: Any = data
    for part in loc:
        node = _child(node, part)
        if isinstance(part, int):
            name = node.get("name") if isinstance(node, dict) else None
            out += f"[{part}]" + (f" ({name})" if isinstance(name, str) else "")
        else:
            out += f".{part}" if out else str(part)
    return out


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _to_plain(node: Any, key: Key, lines: dict[Key, int]) -> Any:
    """Copy ruamel's round-trip tree to plain Python, recording the line of every key and item."""
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for name, value in node.items():
            child = (*key, _scalar(name))
            lines[child] = node.lc.key(name)[0] + 1
            out[_scalar(name)] = _to_plain(value, child, lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*key, index)
            lines[child] = node.lc.item(index)[0] + 1
            items.append(_to_plain(value, child, lines))
        return items
    return _scalar(node)


def _scalar(node: Any) -> Any:
    """ruamel's scalar subclasses (HexInt, ScalarFloat, ...) carry style, not meaning: plain types."""
    if isinstance(node, bool) or node is None:
        return node
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


class ProfileLibrary:
    """Profiles by name; user folders are searched before the shipped ones so a site can override."""

    def __init__(self, extra_dirs: Sequence[str | Path] | None = None) -> None:
        self._dirs = [Path(d) for d in (extra_dirs or [])] + [SHIPPED]
        self._cache: dict[str, AnyProfile] = {}

    def get(self, name: str) -> AnyProfile:
        if name in self._cache:
            return self._cache[name]
        for folder in self._dirs:
            path = folder / f"{name}.yaml"
            if path.is_file():
                profile = self._cache[name] = load_profile_file(path)
                return profile
        raise ProfileError(f"profile {name!r} not found in {', '.join(str(d) for d in self._dirs)}")
