"""Vendor profiles: device knowledge as data (YAML), validated at load into typed objects.

A Modbus profile lists points (table, address, type, word order, scale, offset, unit, enum, bit,
sentinels) plus family extras (DSE alarm nibbles, derived points). An MQTT profile maps topic channels
and JSON paths onto Readings and DeviceEvents.
"""

from drivers.profiles.loader import ProfileError, ProfileLibrary, load_profile_file
from drivers.profiles.schema import (
    AlarmNibbles,
    EventChannel,
    ModbusPoint,
    ModbusProfile,
    MqttProfile,
    Profile,
    StateChannel,
)

__all__ = [
    "AlarmNibbles",
    "EventChannel",
    "ModbusPoint",
    "ModbusProfile",
    "MqttProfile",
    "Profile",
    "ProfileError",
    "ProfileLibrary",
    "StateChannel",
    "load_profile_file",
]
