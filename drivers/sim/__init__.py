"""Simulators that speak the real protocols: Modbus servers (pymodbus: TCP, RTU over TCP, serial RTU)
and MQTT publishers.

Used by the demo, by `estate-gateway simulate CONFIG` for commissioning practice, and by the tests as
the devices on the other end of the wire.
"""

from drivers.sim.generator import GeneratorModel
from drivers.sim.modbus_server import DeviceFault, ModbusSimServer, RegisterModel, SerialSimServer
from drivers.sim.mqtt_device import MqttDeviceSimulator
from drivers.sim.points import PointsModel

__all__ = [
    "DeviceFault",
    "GeneratorModel",
    "ModbusSimServer",
    "MqttDeviceSimulator",
    "PointsModel",
    "RegisterModel",
    "SerialSimServer",
]
