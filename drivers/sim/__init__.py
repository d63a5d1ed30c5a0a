"""Simulators that speak the real protocols: Modbus TCP servers (pymodbus) and MQTT publishers.

Used by the demo, by `estate-gateway simulate CONFIG` for commissioning practice, and by the tests as
the devices on the other end of the wire.
"""

from drivers.sim.generator import GeneratorModel
from drivers.sim.modbus_server import DeviceFault, ModbusSimServer, RegisterModel
from drivers.sim.mqtt_device import MqttDeviceSimulator

__all__ = ["DeviceFault", "GeneratorModel", "ModbusSimServer", "MqttDeviceSimulator", "RegisterModel"]
