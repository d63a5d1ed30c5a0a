"""What real controllers and cameras publish, for the simulator: one canonical event → a vendor's JSON.

Written from the vendors' own documents (DEVICES.md, uhppoted-mqtt's code and docs, the HCNetSDK event
names, Frigate's MQTT docs), not from the profiles that decode them: a test that goes simulator → MQTT →
profile then checks the profile against the vendor, not against itself.

Each builder returns the channels to publish on ("" is the device's base topic itself) and the payload.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

__all__ = ["HEARTBEATS", "STYLES", "Style", "build_event"]

Style = Literal["generic", "uhppoted", "hikvision", "frigate"]
STYLES: tuple[Style, ...] = ("generic", "uhppoted", "hikvision", "frigate")
HEARTBEATS: dict[Style, bool] = {"generic": True, "uhppoted": False, "hikvision": True, "frigate": False}
Built = tuple[list[str], dict[str, Any]]

# UHPPOTE: canonical kind → (event type, reason code, access granted). Types: 1 swipe, 2 door, 3 alarm.
_UHPPOTE: dict[str, tuple[int, int, bool]] = {
    "card_granted": (1, 1, True),
    "card_denied": (1, 6, False),
    "exit_button": (2, 20, True),
    "door_opened": (2, 23, True),  # a normal door event: the profile ignores it
    "duress": (3, 34, False),
    "door_held": (3, 37, False),
    "door_forced": (3, 38, False),
    "fire_button": (3, 39, False),
    "tamper": (3, 41, False),
    "panic": (3, 43, False),
}
_UHPPOTE_DENIALS = {
    "pc_control": 5, "no_permission": 6, "wrong_password": 7, "anti_passback": 8, "more_cards": 9,
    "interlock": 12, "out_of_schedule": 15, "denied": 18,
}  # fmt: skip
_UHPPOTE_TYPES = {1: "card swipe", 2: "door", 3: "alarm"}

# Hikvision: canonical kind → (major, minor) in decimal; variants chosen by `method` / `reason`.
_HIKVISION: dict[str, tuple[int, int]] = {
    "card_granted": (5, 0x01),
    "card_denied": (5, 0x06),
    "door_forced": (5, 0x1B),
    "door_held": (5, 0x1C),
    "tailgating": (5, 0x85),
    "exit_button": (5, 0x17),
    "door_opened": (5, 0x19),  # DOOR_OPEN_NORMAL: the profile ignores it
    "tamper": (1, 0x404),
    "duress": (1, 0x40A),
    "fire_button": (1, 0x418),
    "panic": (1, 0x41C),
}
_HIKVISION_METHODS = {"card": 0x01, "face": 0x4B, "fingerprint": 0x26}
_HIKVISION_REASONS = {
    "no_permission": 0x06, "out_of_schedule": 0x07, "expired": 0x08, "unknown_card": 0x09,
    "fingerprint_failed": 0x27, "face_failed": 0x4C, "controller_tamper": 0x404, "reader_tamper": 0x406,
}  # fmt: skip
_frigate_ids = itertools.count(1)


def build_event(
    style: Style, kind: str, attributes: dict[str, Any], record: int, zone: str, now: float | None = None
) -> Built:
    """`record` is the device's next record number (uhppoted event-id, Hikvision serialNo)."""
    now = time.time() if now is None else now
    if style == "uhppoted":
        return _uhppoted(kind, attributes, record, zone, now)
    if style == "hikvision":
        return _hikvision(kind, attributes, record, zone, now)
    if style == "frigate":
        return _frigate(kind, attributes, now)
    return ["event"], {"event": kind, "ts": now, **attributes}


def _uhppoted(kind: str, attrs: dict[str, Any], record: int, zone: str, now: float) -> Built:
    event_type, reason, granted = _UHPPOTE[kind]
    if kind == "card_denied":
        reason = _UHPPOTE_DENIALS[attrs.get("reason", "no_permission")]
    direction = 2 if attrs.get("direction") == "out" else 1
    local = datetime.fromtimestamp(now, ZoneInfo(zone))
    event = {
        "device-id": 405419896,  # the controller's serial: the host stamps the configured one
        "event-id": record,
        "event-type": event_type,
        "event-type-text": _UHPPOTE_TYPES[event_type],
        "access-granted": granted,
        "door-id": int(attrs.get("door", attrs.get("reader", 1))),
        "direction": direction,
        "direction-text": "out" if direction == 2 else "in",
        "card-number": int(attrs.get("card", 0)),
        "timestamp": local.strftime("%Y-%m-%d %H:%M:%S"),  # controller local time, no zone
        "event-reason": reason,
        "event-reason-text": "",
    }
    # uhppoted-mqtt ≥ 0.8.7 publishes each record on the feed topic and on the live topic.
    return ["", "live"], {"message": {"event": event}, "hmac": "0" * 64}


def _hikvision(kind: str, attrs: dict[str, Any], record: int, zone: str, now: float) -> Built:
    major, minor = _HIKVISION[kind]
    if kind == "card_granted":
        minor = _HIKVISION_METHODS[attrs.get("method", "card")]
    elif kind in ("card_denied", "tamper") and "reason" in attrs:
        minor = _HIKVISION_REASONS[attrs["reason"]]
    reader = int(attrs.get("reader", 2 if attrs.get("direction") == "out" else 1))
    event: dict[str, Any] = {
        "deviceName": "Access Controller",
        "majorEventType": major,
        "subEventType": minor,
        "cardReaderKind": 1,
        "cardReaderNo": reader,
        "doorNo": int(attrs.get("door", 1)),
        "serialNo": record,
        "currentVerifyMode": "cardOrFaceOrFp",
        "attendanceStatus": "undefined",
    }
    if "card" in attrs:
        event["cardNo"] = str(attrs["card"])
    if "employee" in attrs:
        event["employeeNoString"] = str(attrs["employee"])
    moment = datetime.fromtimestamp(int(now), ZoneInfo(zone))  # ISAPI dateTime: whole seconds, offset
    return ["event"], {
        "ipAddress": "127.0.0.1",
        "portNo": 80,
        "protocol": "HTTP",
        "macAddress": "00:00:5e:00:53:01",
        "channelID": 1,
        "dateTime": moment.isoformat(),
        "activePostCount": 1,
        "eventType": "AccessControllerEvent",
        "eventState": "active",
        "eventDescription": "Access Controller Event",
        "AccessControllerEvent": event,
    }


def _frigate(kind: str, attrs: dict[str, Any], now: float) -> Built:
    """plate_read → an lpr update; face → a face update of the same camera (not a plate)."""
    update: dict[str, Any] = {
        "type": "lpr" if kind == "plate_read" else kind,
        "id": f"{now:.6f}-sim{next(_frigate_ids)}",
        "name": attrs.get("known_name"),
        "score": float(attrs.get("confidence", 90)) / 100,
        "camera": attrs.get("camera", "gate_cam"),  # the host stamps the configured camera
        "timestamp": now,
    }
    if kind == "plate_read":
        update["plate"] = str(attrs["plate"])
    return [""], update
