"""What the API reads and acts through: upstream parts handed in by the runtime."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.anpr.registry import VehicleRegistry
from drivers.commands import Commander
from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo
from gateway.api.auth import TokenAuth
from gateway.auth.two_person import DangerRule
from gateway.cluster.view import ClusterView
from gateway.console.recent import RecentReadings
from gateway.escalation.channels.modbus_relay import LocalOutputs
from gateway.escalation.links import AckLinks
from gateway.escalation.roster import Roster
from gateway.evidence.incident import EvidenceService
from gateway.incidents import IncidentService
from gateway.kpi import KpiEngine
from gateway.maintenance import MaintenanceTracker
from gateway.patrol import PatrolTracker


@dataclass
class ApiContext:
    service: IncidentService
    devices: list[DeviceInfo]
    stats: StatsRegistry
    auth: TokenAuth
    online: Callable[[str, str], bool | None] = field(default=lambda estate, device: None)
    commanders: dict[tuple[str, str], Commander] = field(default_factory=dict)
    command_policy: dict[tuple[str, str], dict[str, str]] = field(
        default_factory=dict
    )  # command → least role
    command_interval: float = 2.0  # seconds between two commands to one device (rate limit)
    health: Callable[[], dict[str, Any]] = field(default=lambda: {})
    registries: dict[str, VehicleRegistry] = field(default_factory=dict)  # by estate
    timezones: dict[str, str] = field(default_factory=dict)  # by estate
    rosters: dict[str, Roster] = field(default_factory=dict)  # duty rosters, by estate
    ack_links: AckLinks | None = None  # one-click acknowledge links (escalation.public_url set)
    started: float = field(default_factory=time.time)
    estate_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # (zh, en) by estate: console
    recent: RecentReadings | None = None  # recent readings ring (pipeline observer): console charts
    kpi: KpiEngine | None = None  # KPI engine (pipeline observer, incident listener): /kpis, reports
    cluster: ClusterView | None = None  # several instances: estate owners, forwarding (gateway/cluster)
    evidence: EvidenceService | None = None  # incident evidence: camera links, plate pictures (issue 11)
    local_outputs: LocalOutputs | None = None  # on-site sirens/strobes and their last pulse (issue 11)
    # Two-person rules of dangerous commands, by (estate, device) then command (gateway/api/confirmations)
    dangerous: dict[tuple[str, str], dict[str, DangerRule]] = field(default_factory=dict)
    patrol: PatrolTracker | None = None  # guard tours (gateway/patrol): /patrol/tours, console
    maintenance: MaintenanceTracker | None = None  # maintenance duties (gateway/maintenance)
