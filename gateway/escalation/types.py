"""What the escalation stages pass each other (DESIGN §5): who is notified, of what, and how it went.

    policy step due ─▶ roster: role → people on duty ─▶ channel.send(notification, person) ─▶ Delivery

Channels say whether a retry can help (`retryable`): a 500 or a timeout can, a rejected address cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.model import Priority


@dataclass(frozen=True)
class Person:
    """Someone who can be on duty and be reached. Contact fields are optional per channel."""

    id: str
    name: str
    phone: str | None = None  # E.164, e.g. +8613800138000 (SMS, phone call gateways)
    email: str | None = None
    im: dict[str, str] = field(default_factory=dict)  # per IM channel: the user id to @-mention


@dataclass(frozen=True)
class Notification:
    """One message to one person about one incident, or about several at once (an alarm flood)."""

    estate: str
    estate_name_zh: str
    estate_name_en: str
    incident_ids: tuple[int, ...]  # several: a grouped (flood) notification
    priority: Priority
    title_zh: str
    title_en: str
    device: str
    location: str
    opened_at: float  # epoch s
    step: int  # escalation level, 0 = first notification
    ack_url: str | None = None  # signed one-click acknowledge link (None: no public base URL configured)
    timezone: str = "Asia/Shanghai"
    # A grouped (flood) notification: the (zh, en) titles of its incidents in incident_ids order, so the
    # message can list the first few; empty for a single incident (title_zh / title_en say it all).
    member_titles: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Delivery:
    outcome: Literal["sent", "failed"]
    retryable: bool = False
    detail: str = ""


class Channel(Protocol):
    """A way to reach people (webhook, SMS gateway, e-mail, DingTalk robot ...)."""

    name: str

    async def send(self, notification: Notification, person: Person) -> Delivery:
        """Deliver once; never raises (failures are Deliveries). Retries are the caller's job."""
