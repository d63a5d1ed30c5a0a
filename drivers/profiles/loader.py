"""Find and validate profiles: shipped ones beside this module, user ones from configured folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from drivers.profiles.schema import ModbusProfile, MqttProfile, Profile

SHIPPED = Path(__file__).parent
_ADAPTER: TypeAdapter[ModbusProfile | MqttProfile] = TypeAdapter(Profile)


class ProfileError(Exception):
    """A profile is missing or invalid; the message names the file and the key."""


def load_profile_file(path: Path) -> ModbusProfile | MqttProfile:
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping")
    data.setdefault("name", path.stem)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        )
        raise ProfileError(f"{path}: {details}") from exc


class ProfileLibrary:
    """Profiles by name; user folders are searched before the shipped ones so a site can override."""

    def __init__(self, extra_dirs: Sequence[str | Path] | None = None) -> None:
        self._dirs = [Path(d) for d in (extra_dirs or [])] + [SHIPPED]
        self._cache: dict[str, ModbusProfile | MqttProfile] = {}

    def get(self, name: str) -> ModbusProfile | MqttProfile:
        if name in self._cache:
            return self._cache[name]
        for folder in self._dirs:
            path = folder / f"{name}.yaml"
            if path.is_file():
                profile = self._cache[name] = load_profile_file(path)
                return profile
        raise ProfileError(f"profile {name!r} not found in {', '.join(str(d) for d in self._dirs)}")
