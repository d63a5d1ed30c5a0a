"""Profile schema (pydantic, extra="forbid"): what a site engineer may write in a profile YAML."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.model import Family

RegisterType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
Table = Literal["coil", "discrete", "holding", "input"]

WORDS = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    enum: dict[int, str] | None = Field(None, description="Raw code → label")
    sentinels: list[int] = Field(default_factory=list, description="Raw values meaning 'no value' → bad")
    sentinel_top: int | None = Field(None, ge=0, le=16, description="Overrides the profile's sentinel_top")

    @property
    def words(self) -> int:
        return 1 if self.table in ("coil", "discrete") else WORDS[self.type]

    @model_validator(mode="after")
    def _coherent(self) -> ModbusPoint:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} point must have type bool")
        if self.bit is not None and self.type not in ("uint16", "int16"):
            raise ValueError("'bit' needs a 16-bit register type")
        return self


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
    derived: dict[str, DerivedBelow] = Field(default_factory=dict, description="Derived boolean points")

    @model_validator(mode="after")
    def _unique(self) -> ModbusProfile:
        names = [p.name for p in self.points]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"point names appear twice: {dupes}")
        for name, derived in self.derived.items():
            if derived.source not in names:
                raise ValueError(f"derived point {name!r} refers to unknown point {derived.source!r}")
        return self


class JsonPoint(_Strict):
    """A state value at a dotted JSON path."""

    path: str = Field(description="Dotted path into the payload, e.g. door.open")
    type: Literal["bool", "float", "int", "str"] = Field("float", description="Expected type")
    unit: str = Field("", description="Engineering unit")


class EventChannel(_Strict):
    """A topic channel carrying discrete events."""

    type: Literal["event"] = "event"
    kind_path: str = Field(description="Dotted path of the event kind (or code)")
    kinds: dict[str, str] = Field(description="Raw kind or code (as text) → canonical event kind")
    attributes: dict[str, str] = Field(default_factory=dict, description="Attribute → dotted path")
    ts_path: str | None = Field(None, description="Dotted path of the device timestamp (epoch s)")


class StateChannel(_Strict):
    """A topic channel carrying state (one or more points)."""

    type: Literal["state"] = "state"
    points: dict[str, JsonPoint] = Field(description="Point name → where it is in the payload")
    ts_path: str | None = Field(None, description="Dotted path of the device timestamp (epoch s)")


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


Profile = Annotated[ModbusProfile | MqttProfile, Field(discriminator="protocol")]
