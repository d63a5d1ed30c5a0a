"""Profile schema (pydantic, extra="forbid"): what a site engineer may write in a profile YAML.

Cross-field problems are raised as `KeyedValueError` naming the offending key below the model being
validated, so the loader can print `file.yaml:12 points[3].decimals_from: ...` rather than only the
point's index.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drivers.profiles.control import CoilPulse, ControlKeys, RegisterWrite
from drivers.profiles.mqtt_command import MqttCommand
from drivers.profiles.push import HttpPushProfile
from gateway.model import Family

RegisterType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
Table = Literal["coil", "discrete", "holding", "input"]

WORDS = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
INTEGER_TYPES = ("int16", "uint16", "int32", "uint32")
# Register bit patterns by type: sentinels are compared against the unsigned pattern.
_BITS = {"bool": 16, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32}


class KeyedValueError(ValueError):
    """A validation problem at `key` (a path below the model that raised it)."""

    def __init__(self, key: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.key = key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BitField(_Strict):
    """`width` bits of a 16-bit register starting at bit `start` (0 = least significant)."""

    start: int = Field(ge=0, le=15, description="Lowest bit of the field (0 = least significant)")
    width: int = Field(ge=1, le=16, description="Number of bits in the field")

    @model_validator(mode="after")
    def _fits(self) -> BitField:
        if self.start + self.width > 16:
            raise ValueError(
                f"bits {self.start}..{self.start + self.width - 1} do not fit in a 16-bit register"
            )
        return self


class ModbusPoint(_Strict):
    """One value in the device's register map."""

    name: str = Field(description="Point name used by rules and dashboards")
    table: Table = Field("holding", description="Modbus table")
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: RegisterType = Field("uint16", description="Data type")
    word_order: WordOrder | None = Field(None, description="Overrides the profile's word order")
    scale: float = Field(1.0, description="value = raw * scale + offset")
    offset: float = Field(0.0, description="value = raw * scale + offset")
    unit: str = Field("", description="Engineering unit")
    bit: int | None = Field(None, ge=0, le=15, description="Take one bit of a 16-bit register (bool)")
    bits: BitField | None = Field(
        None, description="Take a field of several bits of a 16-bit register (a number, or a label by enum)"
    )
    enum: dict[int, str] | None = Field(None, description="Raw code (or bit-field value) → label")
    decimals_from: str | None = Field(
        None,
        description="Point of the same device holding the number of decimal places: "
        "value = raw / 10**decimals * scale + offset",
    )
    sentinels: list[int] = Field(
        default_factory=list,
        description="Raw values meaning 'no value' → bad, written as the register's unsigned bit pattern "
        "(0x8000 = 32768 also for an int16; -32768 is accepted and means the same)",
    )
    sentinel_top: int | None = Field(None, ge=0, le=16, description="Overrides the profile's sentinel_top")
    label: str = Field(
        "",
        description="What the control room calls the point, zh first, e.g. '3号楼 2层 烟感'; "
        "shown as {location} of its alarms (empty: the device's location)",
    )
    zone: str = Field(
        "", description="Building/zone of the point, for correlation (empty: the device's zone)"
    )

    @property
    def words(self) -> int:
        return 1 if self.table in ("coil", "discrete") else WORDS[self.type]

    @field_validator("sentinels")
    @classmethod
    def _unsigned_patterns(cls, sentinels: list[int], info: ValidationInfo) -> list[int]:
        """Store sentinels as unsigned bit patterns, so an int16 point compares 0x8000 correctly."""
        kind = info.data.get("type")
        if kind is None:  # the type itself is invalid: reported there
            return sentinels
        if kind == "float32":
            if sentinels:
                raise ValueError("float32 points take no sentinels (NaN and Inf are already bad)")
            return sentinels
        bits = _BITS[kind]
        out = []
        for value in sentinels:
            if not -(1 << (bits - 1)) <= value < (1 << bits):
                raise ValueError(f"{value} does not fit a {bits}-bit register")
            out.append(value & ((1 << bits) - 1))
        return out

    @model_validator(mode="after")
    def _coherent(self) -> ModbusPoint:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise KeyedValueError(("type",), f"a {self.table} point must have type bool")
        for key in ("bit", "bits"):
            if getattr(self, key) is not None and self.type not in ("uint16", "int16"):
                raise KeyedValueError(
                    (key,), f"needs a 16-bit register type (uint16 or int16), not {self.type}"
                )
        if self.bit is not None and self.bits is not None:
            raise KeyedValueError(("bits",), "give 'bit' (one bit) or 'bits' (a field), not both")
        if self.decimals_from is not None:
            if self.type not in INTEGER_TYPES:
                raise KeyedValueError(("decimals_from",), f"needs an integer register type, not {self.type}")
            for key in ("bit", "bits", "enum"):
                if getattr(self, key) is not None:
                    raise KeyedValueError(("decimals_from",), f"cannot be combined with '{key}'")
            if self.decimals_from == self.name:
                raise KeyedValueError(("decimals_from",), "a point cannot give its own decimals")
        return self

    @property
    def numeric(self) -> bool:
        """True when the decoded value is a number (not a label or a flag)."""
        return self.type != "bool" and self.bit is None and self.enum is None


class AlarmNibbles(_Strict):
    """DSE-style alarm block: a count register, then 4-bit codes, four per register, top nibble first."""

    count_address: int = Field(ge=0, le=65535, description="Register holding the number of alarms")
    first_address: int = Field(ge=0, le=65535, description="First register of codes")
    names: list[str] = Field(min_length=1, description="Alarm names in register order")
    codes: dict[int, str] = Field(
        default_factory=lambda: {
            0: "disabled",
            1: "inactive",
            2: "warning",
            3: "shutdown",
            4: "trip",
            15: "unimplemented",
        },
        description="Nibble value → state label",
    )


class DerivedBelow(_Strict):
    """A boolean point that is true while another point is below a limit (e.g. mains failed)."""

    source: str = Field(description="Point it is derived from")
    below: float = Field(description="True while source < below")


class DerivedScale(_Strict):
    """A number computed from another point: value = source × multiply ÷ divide_by + add.

    Two factors so a site can keep the physics and its own constant apart, e.g. septic level in metres
    = kPa × 0.101968 (m of water per kPa, 1/9.807) ÷ 1.02 (the sewage's specific gravity).
    """

    source: str = Field(description="Point it is derived from (a number)")
    multiply: float = Field(1.0, description="value = source × multiply ÷ divide_by + add")
    divide_by: float = Field(1.0, gt=0, description="value = source × multiply ÷ divide_by + add")
    add: float = Field(0.0, description="value = source × multiply ÷ divide_by + add")
    unit: str = Field("", description="Engineering unit of the result")


_SCALE_KEYS = frozenset({"multiply", "divide_by", "add"})


def _derived_form(value: Any) -> str | None:
    """The form is told by its keys: `below` makes a boolean, multiply/divide_by/add a number.
    Neither or both → None, which pydantic reports with the message below."""
    if isinstance(value, DerivedBelow | DerivedScale):
        return "below" if isinstance(value, DerivedBelow) else "scale"
    if not isinstance(value, dict):
        return None
    below, scale = "below" in value, bool(_SCALE_KEYS & value.keys())
    if below == scale:
        return None
    return "below" if below else "scale"


Derived = Annotated[
    Annotated[DerivedBelow, Tag("below")] | Annotated[DerivedScale, Tag("scale")],
    Discriminator(
        _derived_form,
        custom_error_type="derived_form",
        custom_error_message="give 'source' with either 'below' (a boolean: source < below) or any of "
        "'multiply', 'divide_by', 'add' (a number: source × multiply ÷ divide_by + add), not both",
    ),
]


class ModbusProfile(_Strict):
    protocol: Literal["modbus"] = "modbus"
    name: str = Field(description="Profile name (file stem)")
    family: Family = Field(description="Device family")
    description: str = Field("", description="Vendor, model, firmware, source of the map")
    word_order: WordOrder = Field("ABCD", description="Default word/byte order of 32-bit values")
    sentinel_top: int = Field(0, ge=0, le=16, description="Top N raw values of each type mean 'no value'")
    max_gap: int = Field(8, ge=0, le=100, description="Registers a block read may skip to join points")
    max_block: int = Field(120, ge=1, le=125, description="Largest block read in registers")
    points: list[ModbusPoint] = Field(min_length=1, description="Register map")
    alarm_nibbles: AlarmNibbles | None = Field(None, description="DSE-style alarm codes")
    control: ControlKeys | None = Field(None, description="How the device takes commands")
    pulses: dict[str, CoilPulse] = Field(
        default_factory=dict, description="Relay commands: name → coil pulse (e.g. open: barrier relay)"
    )
    writes: dict[str, RegisterWrite] = Field(
        default_factory=dict,
        description="Register commands: name → {address, value} (e.g. a fire panel's silence, reset)",
    )
    derived: dict[str, Derived] = Field(
        default_factory=dict,
        description="Points computed from others: {source, below} (boolean) or "
        "{source, multiply, divide_by, add, unit} (number)",
    )

    @model_validator(mode="after")
    def _references(self) -> ModbusProfile:
        by_name: dict[str, ModbusPoint] = {}
        for index, point in enumerate(self.points):
            if point.name in by_name:
                raise KeyedValueError(("points", index, "name"), f"point name {point.name!r} appears twice")
            by_name[point.name] = point
        for index, point in enumerate(self.points):
            if point.decimals_from is not None:
                _check_decimals_source(point.decimals_from, by_name, ("points", index, "decimals_from"))
        for name, rule in self.derived.items():
            if name in by_name:
                raise KeyedValueError(("derived", name), f"{name!r} is already a point of the register map")
            source = by_name.get(rule.source)
            if source is None:
                raise KeyedValueError(("derived", name, "source"), f"no point named {rule.source!r}")
            if not source.numeric:
                raise KeyedValueError(
                    ("derived", name, "source"), f"point {rule.source!r} is not a number (enum, bit or bool)"
                )
        for name, write in self.writes.items():
            if name in self.pulses or (self.control is not None and name in self.control.keys):
                raise KeyedValueError(("writes", name), f"{name!r} is also a pulse or control key command")
            if write.confirm is not None and write.confirm.point not in by_name:
                where = ("writes", name, "confirm", "point")
                raise KeyedValueError(where, f"no point named {write.confirm.point!r}")
        for name, pulse in self.pulses.items():
            if self.control is not None and name in self.control.keys:
                raise KeyedValueError(("pulses", name), f"{name!r} is also a control key command")
            if pulse.confirm is not None and pulse.confirm.point not in by_name:
                raise KeyedValueError(
                    ("pulses", name, "confirm", "point"), f"no point named {pulse.confirm.point!r}"
                )
        return self


def _check_decimals_source(name: str, by_name: dict[str, ModbusPoint], key: tuple[str | int, ...]) -> None:
    """The decimals point must hold a plain integer count, or the value would be silently wrong."""
    source = by_name.get(name)
    if source is None:
        raise KeyedValueError(key, f"no point named {name!r}")
    if source.type not in INTEGER_TYPES or not source.numeric or source.bits is not None:
        raise KeyedValueError(key, f"point {name!r} must be a plain integer register (no enum, bit or bits)")
    if source.scale != 1.0 or source.offset != 0.0 or source.decimals_from is not None:
        raise KeyedValueError(key, f"point {name!r} must be unscaled (it holds a count of decimal places)")


class JsonPoint(_Strict):
    """A state value at a dotted JSON path."""

    path: str = Field(description="Dotted path into the payload, e.g. door.open")
    type: Literal["bool", "float", "int", "str"] = Field("float", description="Expected type")
    unit: str = Field("", description="Engineering unit")


class EventChannel(_Strict):
    """A topic channel carrying discrete events.

    Raw values are compared as text (drivers/payload_match.py): 75 and "75" are one key, true is "true".
    """

    type: Literal["event"] = "event"
    kind_path: str | list[str] = Field(
        description="Dotted path of the event kind (or code); a list of paths joins their values with '/' "
        "(Hikvision [major, minor] → '5/75')"
    )
    kinds: dict[str, str | None] = Field(
        description="Raw kind → canonical event kind. With a list kind_path, a last part '*' matches any "
        "value; null marks a known code that is no event here (consumed, counted as ignored)"
    )
    attributes: dict[str, str] = Field(default_factory=dict, description="Attribute → dotted path")
    attribute_values: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Attribute → {raw value → canonical value}, e.g. direction {'1': in, '2': out}; "
        "a raw value not listed leaves the attribute out",
    )
    attribute_scale: dict[str, float] = Field(
        default_factory=dict, description="Attribute → factor for numbers (100: a 0–1 score as percent)"
    )
    when: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Dotted path → value: only messages where all hold are this channel's events; the "
        "others are consumed and counted as ignored (not errors)",
    )
    dedup_path: str | None = Field(
        None, description="Dotted path of the device's record id: a repeat of a recent id is dropped"
    )
    ts_path: str | None = Field(
        None, description="Dotted path of the device timestamp (epoch s, or ISO 8601 with a UTC offset)"
    )

    @field_validator("kind_path", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return value
        raise ValueError("give a dotted path, or a list of dotted paths (their values are joined with '/')")

    @model_validator(mode="after")
    def _coherent(self) -> EventChannel:
        if isinstance(self.kind_path, list):  # a single path's raw kinds may contain '/' themselves
            for key in self.kinds:
                parts = key.split("/")
                if len(parts) != len(self.kind_path):
                    raise KeyedValueError(
                        ("kinds", key), f"has {len(parts)} parts; kind_path has {len(self.kind_path)}"
                    )
                if "*" in parts[:-1]:
                    raise KeyedValueError(("kinds", key), "only the last part may be '*'")
        for table in ("attribute_values", "attribute_scale"):
            for name in getattr(self, table):
                if name not in self.attributes:
                    raise KeyedValueError((table, name), f"{name!r} is not one of this channel's attributes")
        return self


class StateChannel(_Strict):
    """A topic channel carrying state (one or more points)."""

    type: Literal["state"] = "state"
    points: dict[str, JsonPoint] = Field(description="Point name → where it is in the payload")
    ts_path: str | None = Field(
        None, description="Dotted path of the device timestamp (epoch s, or ISO 8601 with a UTC offset)"
    )


class HeartbeatChannel(_Strict):
    """A topic channel whose messages only say the device is alive."""

    type: Literal["heartbeat"] = "heartbeat"


Channel = Annotated[EventChannel | StateChannel | HeartbeatChannel, Field(discriminator="type")]


class MqttProfile(_Strict):
    protocol: Literal["mqtt"] = "mqtt"
    name: str = Field(description="Profile name (file stem)")
    family: Family = Field(description="Device family")
    description: str = Field("", description="Vendor, firmware, source")
    max_payload: int = Field(65536, ge=64, description="Larger payloads are rejected unread")
    channels: dict[str, Channel] = Field(
        min_length=1, description="Last topic level → how to read the payload"
    )
    commands: dict[str, MqttCommand] = Field(
        default_factory=dict,
        description="Commands the controller takes over MQTT (e.g. open_door): topic, payload template, "
        "proof state (drivers/profiles/mqtt_command.py)",
    )

    @model_validator(mode="after")
    def _commands_coherent(self) -> MqttProfile:
        states = {p for c in self.channels.values() if isinstance(c, StateChannel) for p in c.points}
        for name, command in self.commands.items():
            for key, missing in command.missing_fields().items():
                raise KeyedValueError(
                    ("commands", name, key), f"template fields {missing} have no value: give them 'defaults'"
                )
            if command.confirm is not None and command.confirm.point not in states:
                raise KeyedValueError(
                    ("commands", name, "confirm", "point"), f"no state point named {command.confirm.point!r}"
                )
        return self


AnyProfile = ModbusProfile | MqttProfile | HttpPushProfile
Profile = Annotated[AnyProfile, Field(discriminator="protocol")]
