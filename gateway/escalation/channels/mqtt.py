"""Publish the notification JSON on the gateway's MQTT connection.

    topic template "estate-gateway/{estate}/notify/{person}" ─▶ publish(topic, payload, qos, retain)

The channel owns no connection: the MQTT ingress injects its publish coroutine (for aiomqtt,
`lambda t, p, q, r: client.publish(t, p, qos=q, retain=r)`, which at QoS 1 returns once the broker
has sent PUBACK). Any error from it means the broker is unreachable now, so it is retryable.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from gateway.escalation.channel_config import MqttChannelConfig
from gateway.escalation.channels.http import failed
from gateway.escalation.channels.payload import notification_json
from gateway.escalation.types import Delivery, Notification, Person

__all__ = ["MqttChannel", "Publish", "topic_for"]

Publish = Callable[[str, bytes, int, bool], Awaitable[None]]  # (topic, payload, qos, retain)
_NOT_IN_LEVEL = re.compile(r"[+#/\x00]")


def topic_for(template: str, notification: Notification, person: Person) -> str:
    """Fill the template; ids lose MQTT wildcard and separator characters so they stay one level."""
    return template.replace("{estate}", _NOT_IN_LEVEL.sub("_", notification.estate)).replace(
        "{person}", _NOT_IN_LEVEL.sub("_", person.id)
    )


class MqttChannel:
    """QoS 1 by default: 'sent' means the broker has the message, not that anyone read it."""

    def __init__(self, config: MqttChannelConfig, publish: Publish) -> None:
        self.name = config.name
        self.config = config
        self._publish = publish

    async def send(self, notification: Notification, person: Person) -> Delivery:
        topic = topic_for(self.config.topic, notification, person)
        body = notification_json(notification, person)
        try:
            async with asyncio.timeout(self.config.timeout):
                await self._publish(topic, body, self.config.qos, self.config.retain)
        except TimeoutError:
            return failed(f"publish to {topic} timed out after {self.config.timeout:g}s", retryable=True)
        except Exception as exc:  # the injected client's errors: broker down, not connected
            return failed(f"publish to {topic}: {type(exc).__name__}: {exc}", retryable=True)
        return Delivery("sent", detail=f"published to {topic} (QoS {self.config.qos})")
