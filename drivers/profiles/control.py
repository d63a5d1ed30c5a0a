"""Control keys as data: how a profile's device takes commands (DSE GenComm style).

A command is written as `[key, 65535 - key]` to `key_register` in one FC16 write. The controller lists
the keys it supports in a bitmap starting at `bitmap`: for f = key - base_key, register bitmap + f // 16,
bit 15 - f % 16. A command may name the state that proves it worked (`confirm`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandConfirm(_Strict):
    point: str = Field(description="Point read back after the write")
    values: list[str | int | float | bool] = Field(min_length=1, description="Any of these means it worked")


class RegisterWrite(_Strict):
    """A command written as one value to one holding register (FC06), e.g. a fire panel's silence or
    reset written to its command register."""

    address: int = Field(ge=0, le=65535, description="Holding register (0-based) the value is written to")
    value: int = Field(ge=0, le=65535, description="The value that means this command")
    confirm: CommandConfirm | None = Field(None, description="State that proves it worked (e.g. silenced)")
    confirm_within: float = Field(5.0, gt=0, le=120, description="Seconds to wait for the proof state")


class ControlKeys(_Strict):
    key_register: int = Field(ge=0, le=65534, description="First of the two key registers (FC16)")
    bitmap: int = Field(ge=0, le=65535, description="First register of the supported-keys bitmap")
    base_key: int = Field(35700, ge=0, le=65535, description="Key of bit 15 of the first bitmap register")
    keys: dict[str, int] = Field(min_length=1, description="Command name → key")
    confirm: dict[str, CommandConfirm] = Field(default_factory=dict, description="Command → proof state")
    confirm_within: float = Field(5.0, gt=0, le=120, description="Seconds to wait for the proof state")


class CoilPulse(_Strict):
    """A relay command: the coil goes ON, and OFF again after `seconds` (a barrier's open contact).

    A barrier controller latches the pulse; holding the contact would keep the arm up, so the OFF is
    written whatever happens in between.
    """

    coil: int = Field(ge=0, le=65535, description="Coil address (0-based) of the relay")
    seconds: float = Field(0.8, gt=0, le=10, description="How long the relay stays closed (typ. 0.5–1 s)")
    confirm: CommandConfirm | None = Field(None, description="State that proves it worked (e.g. up limit)")
    confirm_within: float = Field(5.0, gt=0, le=120, description="Seconds to wait for the proof state")
