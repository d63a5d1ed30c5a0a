"""Transports shared by the drivers: Modbus TCP (pymodbus) and MQTT (aiomqtt over paho)."""
