"""The JSON form of a notification that machine channels (webhook, MQTT) send.

    {"delivery_id": "...", "person": "<person id>", "notification": {...}, "text": {"zh": ..., "en": ...}}

`delivery_id` is derived from the notification and the person, so every retry of the same message (and
the same message over a second channel) carries the same id: receivers can drop duplicates by it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

from gateway.escalation import templates
from gateway.escalation.types import Notification, Person

__all__ = ["delivery_id", "notification_json", "payload"]


def delivery_id(notification: Notification, person: Person) -> str:
    key = "|".join(
        [
            notification.estate,
            ",".join(str(i) for i in notification.incident_ids),
            str(notification.step),
            repr(notification.opened_at),
            person.id,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def payload(notification: Notification, person: Person) -> dict[str, Any]:
    fields = dataclasses.asdict(notification)
    fields["priority"] = notification.priority.value
    fields["incident_ids"] = list(notification.incident_ids)
    fields["member_titles"] = [list(pair) for pair in notification.member_titles]
    zh, _, en = templates.plain_text(notification).partition("\n\n")
    return {
        "delivery_id": delivery_id(notification, person),
        "person": person.id,
        "notification": fields,
        "text": {"zh": zh.strip(), "en": en.strip()},
    }


def notification_json(notification: Notification, person: Person) -> bytes:
    return orjson.dumps(payload(notification, person))
