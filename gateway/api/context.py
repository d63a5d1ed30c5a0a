"""What the API reads and acts through: upstream parts handed in by the runtime."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo
from gateway.api.auth import TokenAuth
from gateway.incidents import IncidentService


@dataclass
class ApiContext:
    service: IncidentService
    devices: list[DeviceInfo]
    stats: StatsRegistry
    auth: TokenAuth
    online: Callable[[str, str], bool | None] = field(default=lambda estate, device: None)
    health: Callable[[], dict[str, Any]] = field(default=lambda: {})
    started: float = field(default_factory=time.time)
