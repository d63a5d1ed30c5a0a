"""Signed one-click acknowledge links for notifications.

    <public_url>/ack/<incident>.<person>.<expires>.<signature>

The signature is HMAC-SHA256 over the first three parts with the configured secret, so a link names
who may ack which incident until when, and cannot be edited into another. The link is a credential:
it is only ever sent to that person, never logged (log lines carry the incident id only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from gateway.model import Clock


class InvalidLink(Exception):
    """The link is malformed, forged or expired; the message says which (for the page, not the log)."""


@dataclass(frozen=True)
class LinkClaim:
    incident_id: int
    person: str
    expires: float


class AckLinks:
    def __init__(self, public_url: str, secret: str, ttl_hours: float, clock: Clock) -> None:
        self.base = public_url.rstrip("/")
        self._key = hashlib.sha256(b"estate-gateway ack link\0" + secret.encode()).digest()
        self.ttl, self.clock = ttl_hours * 3600, clock

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def token(self, incident_id: int, person: str) -> str:
        expires = int(self.clock.now() + self.ttl)
        payload = f"{incident_id}.{base64.urlsafe_b64encode(person.encode()).decode().rstrip('=')}.{expires}"
        return f"{payload}.{self._sign(payload)}"

    def url(self, incident_id: int, person: str) -> str:
        return f"{self.base}/ack/{self.token(incident_id, person)}"

    def verify(self, token: str) -> LinkClaim:
        parts = token.split(".")
        if len(parts) != 4:
            raise InvalidLink("malformed link")
        payload, signature = ".".join(parts[:3]), parts[3]
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidLink("this link is not valid")
        try:
            incident_id, expires = int(parts[0]), float(parts[2])
            person = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidLink("malformed link") from exc
        if self.clock.now() > expires:
            raise InvalidLink("this link has expired")
        return LinkClaim(incident_id, person, expires)
