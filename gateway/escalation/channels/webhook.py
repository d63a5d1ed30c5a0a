"""Signed JSON webhook.

    POST <url>
    Content-Type: application/json
    X-Estate-Gateway-Timestamp: 1700000000
    X-Estate-Gateway-Delivery: <delivery id, the same on every retry>
    X-Estate-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp is part of the signed material, so a receiver that rejects timestamps older than a few
minutes (see `verify_signature`) cannot be fed a replayed request; the delivery id lets it drop the
duplicates our own retries produce.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx

from gateway.escalation.channel_config import WebhookChannelConfig
from gateway.escalation.channels.http import HttpReply, request, status_failure
from gateway.escalation.channels.payload import delivery_id, notification_json
from gateway.escalation.types import Delivery, Notification, Person
from gateway.model import Clock, SystemClock

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "sign_webhook",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Estate-Gateway-Signature"
TIMESTAMP_HEADER = "X-Estate-Gateway-Timestamp"
DELIVERY_HEADER = "X-Estate-Gateway-Delivery"


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: sha256=<hex> over "<timestamp>." + body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str, timestamp: str, signature: str, body: bytes, now: float, tolerance: float = 300.0
) -> bool:
    """What a receiver does: constant-time compare, and refuse stale (replayed) timestamps."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign_webhook(secret, timestamp, body), signature)


class WebhookChannel:
    """POST the notification JSON with an HMAC signature; 5xx/429/timeouts are retryable."""

    def __init__(
        self, config: WebhookChannelConfig, client: httpx.AsyncClient, clock: Clock | None = None
    ) -> None:
        self.name = config.name
        self.config = config
        self._client = client
        self._clock = clock or SystemClock()

    async def send(self, notification: Notification, person: Person) -> Delivery:
        body = notification_json(notification, person)
        timestamp = str(int(self._clock.now()))
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            DELIVERY_HEADER: delivery_id(notification, person),
            SIGNATURE_HEADER: sign_webhook(self.config.secret, timestamp, body),
        }
        reply = await request(
            self._client, "POST", self.config.url, seconds=self.config.timeout, content=body, headers=headers
        )
        if not isinstance(reply, HttpReply):
            return reply
        return status_failure(reply) or Delivery("sent", detail=f"HTTP {reply.status}")
