"""The alert core: rules turn readings and events into alarm transitions (the only place that decides)."""

from gateway.alerts.device import PointPlace
from gateway.alerts.engine import AlertEngine, DeviceInfo
from gateway.alerts.instance import Transition
from gateway.alerts.rules import compile_rules, load_default_rules

__all__ = ["AlertEngine", "DeviceInfo", "PointPlace", "Transition", "compile_rules", "load_default_rules"]
