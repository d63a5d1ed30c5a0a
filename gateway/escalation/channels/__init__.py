"""Notification channels: one module per family, all implementing `Channel.send -> Delivery`.

    webhook   signed JSON POST                     sms_http  generic HTTP SMS gateway
    robots    DingTalk / WeCom / Feishu groups     smtp      e-mail (smtplib in a thread)
    mqtt      JSON on the gateway's broker         console   in-process live feed
    modbus_relay  an on-site siren / strobe / PA relay (local output, audited)

`build_channels` turns the config list into channels by `type`. Every HTTP channel shares one injected
httpx.AsyncClient (owned and closed by the runtime); the MQTT channel needs the ingress's publish
coroutine and the console channel the NoticeFeed the API subscribes to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from drivers.commands import Commander
from gateway.escalation.channel_config import (
    ChannelConfig,
    ConsoleChannelConfig,
    DingTalkChannelConfig,
    FeishuChannelConfig,
    ModbusRelayChannelConfig,
    MqttChannelConfig,
    SmsHttpChannelConfig,
    SmtpChannelConfig,
    WebhookChannelConfig,
    WeComChannelConfig,
)
from gateway.escalation.channels.console import ConsoleChannel, Notice, NoticeFeed, NoticeSubscription
from gateway.escalation.channels.modbus_relay import Audit, LocalOutputs, ModbusRelayChannel
from gateway.escalation.channels.mqtt import MqttChannel, Publish
from gateway.escalation.channels.robots import DingTalkChannel, FeishuChannel, WeComChannel
from gateway.escalation.channels.sms_http import SmsHttpChannel
from gateway.escalation.channels.smtp import SmtpChannel
from gateway.escalation.channels.webhook import WebhookChannel, sign_webhook, verify_signature
from gateway.escalation.types import Channel
from gateway.model import Clock, SystemClock

__all__ = [
    "ChannelSetupError",
    "ConsoleChannel",
    "DingTalkChannel",
    "FeishuChannel",
    "LocalOutputs",
    "ModbusRelayChannel",
    "MqttChannel",
    "Notice",
    "NoticeFeed",
    "NoticeSubscription",
    "Publish",
    "SmsHttpChannel",
    "SmtpChannel",
    "WeComChannel",
    "WebhookChannel",
    "build_channel",
    "build_channels",
    "sign_webhook",
    "verify_signature",
]


class ChannelSetupError(ValueError):
    """A channel cannot be built: e.g. an MQTT channel without a broker connection."""


def build_channel(
    config: ChannelConfig,
    *,
    client: httpx.AsyncClient,
    clock: Clock | None = None,
    publish: Publish | None = None,
    feed: NoticeFeed | None = None,
    commanders: Mapping[tuple[str, str], Commander] | None = None,
    audit: Audit | None = None,
    outputs: LocalOutputs | None = None,
) -> Channel:
    clock = clock or SystemClock()
    match config:
        case WebhookChannelConfig():
            return WebhookChannel(config, client, clock)
        case SmsHttpChannelConfig():
            return SmsHttpChannel(config, client)
        case DingTalkChannelConfig():
            return DingTalkChannel(config, client, clock)
        case WeComChannelConfig():
            return WeComChannel(config, client, clock)
        case FeishuChannelConfig():
            return FeishuChannel(config, client, clock)
        case SmtpChannelConfig():
            return SmtpChannel(config)
        case MqttChannelConfig():
            if publish is None:
                raise ChannelSetupError(f"channel {config.name}: MQTT needs the gateway's broker connection")
            return MqttChannel(config, publish)
        case ConsoleChannelConfig():
            if feed is None:
                raise ChannelSetupError(f"channel {config.name}: the console channel needs a NoticeFeed")
            return ConsoleChannel(config, feed)
        case ModbusRelayChannelConfig():
            if commanders is None or audit is None:
                raise ChannelSetupError(f"channel {config.name}: a relay needs device commanders and audit")
            return ModbusRelayChannel(config, commanders, audit, clock, outputs)


def build_channels(
    configs: Sequence[ChannelConfig],
    *,
    client: httpx.AsyncClient,
    clock: Clock | None = None,
    publish: Publish | None = None,
    feed: NoticeFeed | None = None,
    commanders: Mapping[tuple[str, str], Commander] | None = None,
    audit: Audit | None = None,
    outputs: LocalOutputs | None = None,
) -> dict[str, Channel]:
    """Channels by name, for escalation steps' `channels: [name, ...]`."""
    channels: dict[str, Channel] = {}
    for c in configs:
        channels[c.name] = build_channel(
            c, client=client, clock=clock, publish=publish, feed=feed, commanders=commanders,
            audit=audit, outputs=outputs,
        )  # fmt: skip
    return channels
