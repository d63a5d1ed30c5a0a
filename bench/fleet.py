"""The many-estate fleet shared by scale.py and soak.py: its layout, its site YAML and the servers it needs.

A fleet is `devices` devices in `estates` estates: a share (`modbus_share`, default 5 %) are Modbus
devices with modbus_poll.py's mix of profiles on `MODBUS_ENDPOINTS` simulated endpoints (spawned child
servers, `modbus_poll.ChildServers`), polled every 5 s; the rest are `generic_access_gate` devices on MQTT,
`g000`, `g001`, ... in estates `s000`, `s001`, ..., which the benchmark feeds with heartbeats (and soak.py
with alarm conditions) through a paced publisher on a private Mosquitto.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ingest_throughput import private_port
from modbus_poll import ChildServers, Layout

from gateway.runtime.broker import MosquittoProcess

__all__ = ["FAMILY", "HOST", "MODBUS_ENDPOINTS", "Fleet", "FleetServers", "slope_mib_per_min"]

HOST = "127.0.0.1"
FAMILY = {
    "pressure_transmitter_s16": "septic_pressure",
    "pressure_transmitter_float": "septic_pressure",
    "dse_gencomm": "generator",
    "comap_intelilite4": "generator",
    "gst_modbus_site_example": "fire_panel",
    "notifier_demo_loop1": "fire_panel",
}
MODBUS_ENDPOINTS = 10


@dataclass(frozen=True)
class Fleet:
    estates: int
    modbus: int  # Modbus devices
    per_estate: tuple[int, ...]  # MQTT gates in each estate
    layout: Layout

    @classmethod
    def build(cls, devices: int, estates: int, modbus_share: float = 0.05) -> Fleet:
        modbus = round(devices * modbus_share)
        layout = Layout.build(modbus, MODBUS_ENDPOINTS) if modbus else Layout(MODBUS_ENDPOINTS, ())
        gates = devices - modbus
        per_estate = tuple(gates // estates + (e < gates % estates) for e in range(estates))
        return cls(estates, modbus, per_estate, layout)

    @property
    def gates(self) -> int:
        return sum(self.per_estate)

    def gate_ids(self) -> list[tuple[str, str]]:
        """(estate, device) of every MQTT gate, estate by estate."""
        return [(f"s{e:03d}", f"g{d:03d}") for e in range(self.estates) for d in range(self.per_estate[e])]

    def estates_yaml(self, ports: list[int], gate_extra: str = "") -> list[str]:
        """The site's `estates:` section; `gate_extra` is added to each gate's mapping (e.g. a timeout)."""
        lines = ["estates:"]
        modbus_by_estate: dict[int, list[str]] = {}
        for i, dev in enumerate(self.layout.devices):
            modbus_by_estate.setdefault(i % self.estates, []).append(
                f"      - {{id: mb-{dev.endpoint}-{dev.unit:03d}, family: {FAMILY[dev.profile]},"
                f" profile: {dev.profile}, poll_interval: 5,"
                f" modbus: {{host: {HOST}, port: {ports[dev.endpoint]}, unit_id: {dev.unit}, timeout: 1}}}}"
            )
        for e in range(self.estates):
            lines += [f"  - id: s{e:03d}", f"    name: {{zh: 小区{e}, en: Estate {e}}}", "    devices:"]
            for d in range(self.per_estate[e]):
                lines.append(
                    f"      - {{id: g{d:03d}, family: access_gate, profile: generic_access_gate,{gate_extra}"
                    f' mqtt: {{topic: "estate/s{e:03d}/access_gate/g{d:03d}/+"}}}}'
                )
            lines += modbus_by_estate.get(e, [])
        return lines


class FleetServers:
    """A private Mosquitto (free port, never 1883) and, when the fleet has Modbus devices, the child
    Modbus servers; `stop()` ends both by their own handles."""

    def __init__(self, fleet: Fleet) -> None:
        self.broker = MosquittoProcess(port=private_port())
        self.modbus = ChildServers(fleet.layout.units(), "socket", 0.25) if fleet.modbus else None

    @property
    def ports(self) -> list[int]:
        return self.modbus.ports if self.modbus else []

    async def start(self) -> None:
        self.broker.start()
        if self.modbus:
            await self.modbus.start()

    async def stop(self) -> None:
        if self.modbus:
            await self.modbus.stop()
        self.broker.close()


def slope_mib_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    ts = [t for t, _ in samples]
    rs = [r for _, r in samples]
    mt, mr = statistics.fmean(ts), statistics.fmean(rs)
    den = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (r - mr) for t, r in zip(ts, rs, strict=True)) / den if den else 0.0
