"""Site configuration: one YAML file, validated once into typed objects (see `schema`)."""

from gateway.config.loader import ConfigError, ConfigIssue, load_config, parse_config
from gateway.config.schema import (
    ApiConfig,
    ApiTokenConfig,
    DeviceConfig,
    EstateConfig,
    GatewayConfig,
    ModbusEndpointConfig,
    MqttBrokerConfig,
    MqttDeviceConfig,
    RuleConfig,
    StoreConfig,
)

__all__ = [
    "ApiConfig",
    "ApiTokenConfig",
    "ConfigError",
    "ConfigIssue",
    "DeviceConfig",
    "EstateConfig",
    "GatewayConfig",
    "ModbusEndpointConfig",
    "MqttBrokerConfig",
    "MqttDeviceConfig",
    "RuleConfig",
    "StoreConfig",
    "load_config",
    "parse_config",
]
