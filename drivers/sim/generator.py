"""A DSE-like generator for the simulator: an engine state machine behind the DSE GenComm map.

Auto mode: mains fails → crank (pre_start) → running; mains returns → cool down → stopped. Scenario
knobs: `fail_to_start` (cranking never catches; after 3 attempts the controller raises fail_to_start
and latches until reset), `oil_pressure_running` (e.g. 120 kPa: low, but above the controller's own
100 kPa shutdown), `oil_sender_fault` (the register reads the 0xFFFC sentinel), `fuel_level`.
Control keys are honoured as on the real controller: `[key, 65535 - key]` written to 4104-4105.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.profiles import ModbusProfile
from drivers.registers import encode_value
from drivers.sim.modbus_server import DeviceFault

KEY_STOP, KEY_AUTO, KEY_MANUAL, KEY_TEST, KEY_START, KEY_MUTE, KEY_RESET = (
    35700,
    35701,
    35702,
    35703,
    35705,
    35706,
    35707,
)
SUPPORTED_KEYS = (KEY_STOP, KEY_AUTO, KEY_MANUAL, KEY_TEST, KEY_START, KEY_MUTE, KEY_RESET)
CONTROL_ADDRESS = 4104
CRANK_SECONDS = 2.0
CRANK_ATTEMPTS = 3
COOLDOWN_SECONDS = 3.0
CONTROLLER_LOW_OIL_KPA = 100.0


def _code(enum: dict[int, str], label: str) -> int:
    return next(code for code, name in enum.items() if name == label)


class GeneratorModel:
    def __init__(self, profile: ModbusProfile, clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self.clock = clock
        self.fault = DeviceFault()
        self.supported = set(SUPPORTED_KEYS)  # a model without a key lists it as unsupported (and refuses it)
        self.mode = "auto"
        self.engine = "stopped"
        self.mains_ok = True
        self.fail_to_start = False
        self.oil_pressure_running = 400.0
        self.oil_sender_fault = False
        self.fuel_level = 80.0
        self.battery_voltage = 26.8
        self.alarms: dict[str, int] = {
            name: 1 for name in (profile.alarm_nibbles.names if profile.alarm_nibbles else [])
        }
        self.starts = 12
        self.run_seconds = 3600 * 120
        self._since = clock()
        self._attempts = 0
        self._points = {p.name: p for p in profile.points}

    # -- scenario controls -----------------------------------------------------------------------
    def set_mains(self, ok: bool) -> None:
        self.mains_ok = ok

    # -- state machine ---------------------------------------------------------------------------
    def _enter(self, state: str) -> None:
        self.engine, self._since = state, self.clock()

    def step(self) -> None:
        elapsed = self.clock() - self._since
        wants_run = self.mode in ("manual_run", "test_on_load") or (self.mode == "auto" and not self.mains_ok)
        latched = self.alarms.get("fail_to_start", 1) >= 3 or self.alarms.get("low_oil_pressure", 1) >= 3
        if self.engine == "stopped" and wants_run and not latched:
            self._attempts = 1
            self._enter("pre_start")
        elif self.engine == "pre_start" and elapsed >= CRANK_SECONDS:
            if not self.fail_to_start:
                self.starts += 1
                self._enter("running")
            elif self._attempts < CRANK_ATTEMPTS:
                self._attempts += 1
                self._enter("pre_start")
            else:
                self.alarms["fail_to_start"] = 3  # shutdown alarm, latched until reset
                self._enter("stopped")
        elif self.engine == "running":
            if self.oil_pressure_running < CONTROLLER_LOW_OIL_KPA and elapsed > 3:
                self.alarms["low_oil_pressure"] = 3
                self._enter("stopped")
            elif not wants_run:
                self._enter("cooling")
        elif self.engine == "cooling" and (wants_run or elapsed >= COOLDOWN_SECONDS):
            self._enter("running" if wants_run else "stopped")

    # -- register image --------------------------------------------------------------------------
    def values(self) -> dict[str, float | str]:
        running = self.engine in ("running", "cooling")
        return {
            "manufacturer": 1,
            "model": 7320,
            "control_mode": "manual" if self.mode == "manual_run" else self.mode,
            "oil_pressure": self.oil_pressure_running if running else 0.0,
            "coolant_temperature": 82.0 if running else 35.0,
            "fuel_level": self.fuel_level,
            "battery_voltage": self.battery_voltage,
            "engine_speed": 1500 if running else 0,
            "generator_frequency": 50.0 if running else 0.0,
            "generator_l1_voltage": 230.0 if running else 0.0,
            "mains_frequency": 50.0 if self.mains_ok else 0.0,
            "mains_voltage": 229.5 if self.mains_ok else 0.0,
            "engine_state": self.engine,
            "total_power": 42000 if running and not self.mains_ok else 0,
            "run_time": self.run_seconds,
            "starts": self.starts,
        }

    def registers(self) -> dict[int, int]:
        self.step()
        out: dict[int, int] = {}
        for name, value in self.values().items():
            point = self._points.get(name)
            if point is None:
                continue
            number = value if not isinstance(value, str) else _code(point.enum or {}, value)
            for i, word in enumerate(encode_value(float(number), point, self.profile.word_order)):
                out[point.address + i] = word
        if self.oil_sender_fault:
            out[self._points["oil_pressure"].address] = 0xFFFC
        nib = self.profile.alarm_nibbles
        if nib is not None:
            out[nib.count_address] = len(nib.names)
            nibbles = [self.alarms.get(name, 1) for name in nib.names]
            for i in range(0, len(nibbles), 4):
                word = 0
                for j, code in enumerate(nibbles[i : i + 4]):
                    word |= (code & 0xF) << (12 - 4 * j)
                out[nib.first_address + i // 4] = word
        for f in range(16):  # supported-keys bitmap at 4096..
            key = 35700 + f
            if key in self.supported:
                out[4096 + f // 16] = out.get(4096 + f // 16, 0) | (1 << (15 - f % 16))
        return out

    def write(self, address: int, values: list[int]) -> int | None:
        if address != CONTROL_ADDRESS or len(values) != 2 or values[0] + values[1] != 65535:
            return 3  # illegal data value
        key = values[0]
        if key not in self.supported:
            return 7  # negative acknowledge: unsupported key
        if key == KEY_STOP:
            self.mode = "stop"
            self._enter("stopped")
        elif key == KEY_AUTO:
            self.mode = "auto"
        elif key == KEY_MANUAL:
            self.mode = "manual"
        elif key == KEY_START and self.mode == "manual":
            self.mode = "manual_run"
        elif key == KEY_TEST:
            self.mode = "test_on_load"
        elif key == KEY_RESET:
            self.alarms = dict.fromkeys(self.alarms, 1)
        return None
