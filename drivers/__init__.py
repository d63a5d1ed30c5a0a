"""Device drivers: transports (MQTT, Modbus), vendor profiles as data, and simulators (drivers/sim)."""
