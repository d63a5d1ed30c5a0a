"""Play every device of a site config: Modbus servers grouped by endpoint, MQTT devices by topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from drivers.profiles import HttpPushProfile, ModbusProfile, MqttProfile, ProfileLibrary
from drivers.sim.anpr_camera import PushCameraSimulator, Style
from drivers.sim.barrier import BarrierModel
from drivers.sim.fire_panel import FirePanelModel
from drivers.sim.generator import GeneratorModel
from drivers.sim.modbus_server import DeviceFault, ModbusSimServer, RegisterModel
from drivers.sim.mqtt_device import MqttDeviceSimulator
from drivers.sim.points import PointsModel
from drivers.sim.relay_board import RelayBoardModel
from drivers.sim.vendor_payloads import Style as MqttStyle
from drivers.transports.modbus import Framer
from gateway.config import GatewayConfig


def _topic_base(topic_filter: str) -> str:
    levels = topic_filter.split("/")
    while levels and levels[-1] in ("+", "#"):
        levels.pop()
    return "/".join(levels)


PUSH_STYLES: dict[str, Style] = {"alphadigi_http": "alphadigi", "dahua_itc_http": "dahua"}
# Whose JSON a simulated MQTT device speaks, by its profile; any other profile gets the generic one.
MQTT_STYLES: dict[str, MqttStyle] = {
    "uhppoted_mqtt": "uhppoted", "hikvision_access_mqtt": "hikvision", "frigate_lpr": "frigate",
}  # fmt: skip


class SimulationHost:
    """Start with `async with SimulationHost(config)`; drive with `apply(device, action, args)`."""

    def __init__(self, config: GatewayConfig, heartbeat_interval: float = 5.0) -> None:
        """Pushing cameras post to the config's camera port; call `push_to(port)` when it was 0 (free)."""
        library = ProfileLibrary(config.profile_dirs)
        self.models: dict[str, RegisterModel] = {}
        self.mqtt_devices: dict[str, MqttDeviceSimulator] = {}
        self.cameras: dict[str, PushCameraSimulator] = {}
        endpoints: dict[tuple[str, int, Framer], dict[int, RegisterModel]] = {}
        for estate in config.estates:
            for device in estate.devices:
                profile = library.get(device.profile)
                if isinstance(profile, ModbusProfile) and device.modbus is not None:
                    model: RegisterModel
                    if profile.family.value == "generator":
                        model = GeneratorModel(profile)
                    elif "open" in profile.pulses:
                        model = BarrierModel(profile)
                    elif profile.family.value == "local_output":
                        model = RelayBoardModel(profile)
                    elif profile.family.value == "fire_panel" and profile.writes:
                        model = FirePanelModel(profile)  # obeys silence / reset
                    else:
                        model = PointsModel(profile)
                    self.models[device.id] = model
                    key = (device.modbus.host, device.modbus.port, device.modbus.framer)
                    endpoints.setdefault(key, {})[device.modbus.unit_id] = model
                elif isinstance(profile, HttpPushProfile) and device.http_push is not None:
                    style = PUSH_STYLES.get(profile.name)
                    if style is not None:  # a site's own push format: the simulator cannot play it
                        self.cameras[device.id] = PushCameraSimulator(
                            f"http://127.0.0.1:{config.http_push.port}",
                            f"/anpr/{estate.id}/{device.id}",
                            device.http_push.token,
                            style,
                            f"sim-{device.id}",
                            estate.timezone,
                        )
                elif isinstance(profile, MqttProfile) and device.mqtt is not None:
                    self.mqtt_devices[device.id] = MqttDeviceSimulator(
                        config.mqtt.host, config.mqtt.port, _topic_base(device.mqtt.topic),
                        heartbeat_interval, MQTT_STYLES.get(profile.name, "generic"), device.mqtt.match,
                        estate.timezone,
                    )  # fmt: skip
        self.servers = [
            ModbusSimServer(host, port, units, framer) for (host, port, framer), units in endpoints.items()
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> SimulationHost:
        for server in self.servers:
            await server.start()
        for camera in self.cameras.values():
            await self._stack.enter_async_context(camera)
        for sim in self.mqtt_devices.values():
            await self._stack.enter_async_context(sim)
            self._tasks.append(asyncio.create_task(sim.heartbeats()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
        for server in self.servers:
            await server.stop()

    def push_to(self, port: int) -> None:
        """Point every pushing camera at the gateway's camera port (known once the gateway listens)."""
        for camera in self.cameras.values():
            camera.url = f"http://127.0.0.1:{port}{camera.path}"

    async def apply(self, device: str, action: str, args: dict[str, Any]) -> None:
        if device in self.models:
            model = self.models[device]
            if action == "set":
                for name, value in args.items():
                    if isinstance(model, PointsModel):
                        model.set(name, value)
                    else:
                        setattr(model, name, value)
            elif action == "mains" and isinstance(model, GeneratorModel):
                model.set_mains(bool(args.get("ok", True)))
            elif action == "fault":
                model.fault = DeviceFault(**args)
            else:
                raise ValueError(f"{device}: action {action!r} does not apply to a Modbus device")
            return
        camera = self.cameras.get(device)
        if camera is not None:
            if action != "plate":
                raise ValueError(f"{device}: action {action!r} does not apply to a pushing camera")
            options = {k: v for k, v in args.items() if k != "plate"}
            await camera.read(str(args["plate"]), **options)
            return
        sim = self.mqtt_devices.get(device)
        if sim is None:
            raise ValueError(f"no simulated device {device!r}")
        if action == "event":
            extra = {k: v for k, v in args.items() if k != "kind"}
            await sim.event(str(args["kind"]), **extra)
        elif action == "burst":  # `count` events spread evenly over `within` s (a denied-card burst)
            extra = {k: v for k, v in args.items() if k not in ("kind", "count", "within")}
            count, within = int(args["count"]), float(args.get("within", 0.0))
            for i in range(count):
                if i:
                    await asyncio.sleep(within / (count - 1))
                await sim.event(str(args["kind"]), **extra)
        elif action == "plate":  # a vehicle at an MQTT camera, in the camera's own JSON
            options = {k: v for k, v in args.items() if k != "plate"}
            if sim.style == "frigate":
                await sim.event("plate_read", plate=str(args["plate"]), **options)
            else:  # generic_anpr_json: the camera's list verdict travels as `list`
                payload = {"list": "otherList", "confidence": 96, "ts": time.time(), **options}
                await sim.publish("event", {**payload, "plate": str(args["plate"])})
        elif action == "publish":
            await sim.publish(str(args["channel"]), args.get("payload", {}))
        elif action == "silent":
            sim.silent = bool(args.get("on", True))
        else:
            raise ValueError(f"{device}: action {action!r} does not apply to an MQTT device")
