"""Load a site YAML file into a GatewayConfig, with errors that name the file, line and key.

Errors come out as `site.yaml:42 estates[0].devices[3].modbus.port: must be 1..65535`. Secrets are
written as `${ENV_VAR}` (or `${ENV_VAR:-default}`) and substituted from the environment at load.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gateway.config.schema import GatewayConfig

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where} {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `issues` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, substitute ${ENV} and validate a site file. Raises ConfigError."""
    return load_config_with_lines(path, environ)[0]


def load_config_with_lines(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> tuple[GatewayConfig, dict[PathKey, int]]:
    """As load_config, plus the line of every key, for messages about cross-file problems (profiles)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc.strerror}")]) from exc
    return _parse(text, path.name, os.environ if environ is None else environ)


def parse_config(text: str, filename: str, environ: Mapping[str, str]) -> GatewayConfig:
    """Validate YAML text. `filename` is only used in messages."""
    return _parse(text, filename, environ)[0]


def _parse(text: str, filename: str, environ: Mapping[str, str]) -> tuple[GatewayConfig, dict[PathKey, int]]:
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError([ConfigIssue(filename, line, "", f"YAML: {exc.problem}")]) from exc
    except YAMLError as exc:  # a ReaderError (a control character) has a position, not a mark
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
        raise ConfigError([ConfigIssue(filename, line, "", f"YAML: {getattr(exc, 'reason', exc)}")]) from exc
    except RecursionError as exc:  # ruamel's parser recurses once per nesting level
        raise ConfigError([ConfigIssue(filename, 1, "", "YAML: nested too deeply")]) from exc
    if not isinstance(tree, CommentedMap):
        raise ConfigError([ConfigIssue(filename, 1, "", "the file must be a mapping at the top")])
    lines: dict[PathKey, int] = {}
    missing: list[ConfigIssue] = []
    plain = _to_plain(tree, (), lines, environ, missing, filename)
    if missing:
        raise ConfigError(missing)
    try:
        return GatewayConfig.model_validate(plain), lines
    except ValidationError as exc:
        raise ConfigError(_issues(exc, lines, filename)) from exc


def _to_plain(
    node: Any,
    path: PathKey,
    lines: dict[PathKey, int],
    environ: Mapping[str, str],
    missing: list[ConfigIssue],
    filename: str,
) -> Any:
    """Copy ruamel's tree to plain Python, recording the line of every key and item."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            lines[child] = node.lc.key(key)[0] + 1
            out[str(key)] = _to_plain(value, child, lines, environ, missing, filename)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            lines[child] = node.lc.item(index)[0] + 1
            items.append(_to_plain(value, child, lines, environ, missing, filename))
        return items
    if isinstance(node, str):
        return _substitute(node, path, lines, environ, missing, filename)
    return node


def _substitute(
    value: str,
    path: PathKey,
    lines: dict[PathKey, int],
    environ: Mapping[str, str],
    missing: list[ConfigIssue],
    filename: str,
) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing.append(
            ConfigIssue(
                filename, lines.get(path), _format_path(path), f"environment variable {name} is not set"
            )
        )
        return ""

    return _ENV.sub(replace, value)


def _issues(exc: ValidationError, lines: dict[PathKey, int], filename: str) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc: PathKey = tuple(error["loc"])
        line = None
        for cut in range(len(loc), -1, -1):  # the deepest key that exists in the file
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check spelling; see the schema's field list)"
        elif error["type"] == "missing":
            message = "required key is missing"
        issues.append(ConfigIssue(filename, line or 1, _format_path(loc), message))
    return issues


def _format_path(loc: PathKey) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
