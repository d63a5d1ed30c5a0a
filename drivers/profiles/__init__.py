"""Vendor profiles: device knowledge as data (YAML), validated at load into typed objects.

A Modbus profile lists points (table, address, type, word order, scale, offset, unit, enum, bit or a
bit field, decimals read from another point, sentinels) plus family extras (DSE alarm nibbles, derived
points: `below` booleans and `scale` numbers). An MQTT profile maps topic channels and JSON paths onto
Readings and DeviceEvents.
"""

from drivers.profiles.loader import ProfileError, ProfileLibrary, load_profile_file
from drivers.profiles.push import HttpPushProfile
from drivers.profiles.schema import (
    AlarmNibbles,
    AnyProfile,
    BitField,
    DerivedBelow,
    DerivedScale,
    EventChannel,
    KeyedValueError,
    ModbusPoint,
    ModbusProfile,
    MqttProfile,
    Profile,
    StateChannel,
)

__all__ = [
    "AlarmNibbles",
    "AnyProfile",
    "BitField",
    "DerivedBelow",
    "DerivedScale",
    "EventChannel",
    "HttpPushProfile",
    "KeyedValueError",
    "ModbusPoint",
    "ModbusProfile",
    "MqttProfile",
    "Profile",
    "ProfileError",
    "ProfileLibrary",
    "StateChannel",
    "load_profile_file",
]
