"""Notification channels against real local servers: an HTTP receiver (webhook, SMS gateway, DingTalk,
WeCom and Feishu robots), aiosmtpd (e-mail) and Mosquitto (MQTT). Nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiomqtt
import httpx
import pytest

from gateway.escalation import templates
from gateway.escalation.channel_config import (
    DingTalkChannelConfig,
    FeishuChannelConfig,
    MqttChannelConfig,
    SmsHttpChannelConfig,
    SmsSuccessConfig,
    SmtpChannelConfig,
    WebhookChannelConfig,
    WeComChannelConfig,
)
from gateway.escalation.channels import (
    DingTalkChannel,
    FeishuChannel,
    MqttChannel,
    SmsHttpChannel,
    SmtpChannel,
    WebhookChannel,
    WeComChannel,
    verify_signature,
)
from gateway.escalation.delivery import DeliveryStats, deliver
from gateway.escalation.types import Notification, Person
from gateway.model import ManualClock, Priority
from gateway.runtime.broker import MosquittoProcess, free_port
from tests.integration.receivers import HttpReceiver, Reply, SmtpReceiver

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-0123456789"
ACK = "https://gw.example.com/ack/42?sig=abc123"
NOW = 1_700_000_123.456
PERSON = Person(
    "p-wang",
    "王工",
    phone="+8613800138000",
    email="wang@example.com",
    im={"dingtalk": "ding-wang", "wecom": "WangGong", "feishu": "ou_7d8a6e6df7621556ce0d21922b676706"},
)
NOTE = Notification(
    estate="sunshine",
    estate_name_zh="阳光花园",
    estate_name_en="Sunshine Garden",
    incident_ids=(42,),
    priority=Priority.CRITICAL,
    title_zh="3号楼 市电故障",
    title_en="Block 3 mains failure",
    device="ats-3",
    location="3号楼 地下室 配电房",
    opened_at=1_700_000_000.0,
    step=1,
    ack_url=ACK,
)


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    server = await HttpReceiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:  # no proxy from the environment for 127.0.0.1
        yield http


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def webhook(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock, **kw: Any
) -> WebhookChannel:
    config = WebhookChannelConfig(type="webhook", name="hook", url=receiver.url("/hook"), secret=SECRET, **kw)
    return WebhookChannel(config, client, clock)


def sms(receiver: HttpReceiver, client: httpx.AsyncClient) -> SmsHttpChannel:
    config = SmsHttpChannelConfig(
        type="sms_http",
        name="sms",
        url=receiver.url("/sms/send"),
        fields={"to": "{phone}", "text": "{text}", "sender": "estate-gw"},
        auth_header="Bearer sms-token",
        phone_format="national_cn",
        success=SmsSuccessConfig(path="code", value=0),
    )
    return SmsHttpChannel(config, client)


# --- webhook ------------------------------------------------------------------------------------------


async def test_webhook_body_is_signed_over_timestamp_and_raw_body(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    result = await webhook(receiver, client, clock, headers={"X-Site": "sunshine"}).send(NOTE, PERSON)
    assert result.outcome == "sent", result.detail
    [request] = receiver.requests
    timestamp = request.headers["x-estate-gateway-timestamp"]
    signature = request.headers["x-estate-gateway-signature"]
    assert timestamp == str(int(NOW)) and request.headers["x-site"] == "sunshine"
    assert verify_signature(SECRET, timestamp, signature, request.body, now=NOW + 5)
    assert not verify_signature("another-secret-0123456789", timestamp, signature, request.body, now=NOW)
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    body = request.json()
    assert body["person"] == "p-wang" and body["delivery_id"] == request.headers["x-estate-gateway-delivery"]
    assert body["notification"]["incident_ids"] == [42] and body["notification"]["priority"] == "critical"
    assert body["notification"]["ack_url"] == ACK
    assert body["text"]["zh"].startswith("【紧急】") and body["text"]["en"].startswith("[Critical]")


async def test_webhook_retries_use_the_same_delivery_id_and_a_fresh_signature(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    receiver.answer(Reply(503))
    channel = webhook(receiver, client, clock)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    records = await deliver([channel], NOTE, PERSON, attempts=2, backoff=30, sleep=sleep, clock=clock)
    assert [r.outcome for r in records] == ["failed", "sent"]
    first, second = receiver.requests
    assert first.headers["x-estate-gateway-delivery"] == second.headers["x-estate-gateway-delivery"]
    assert (
        int(second.headers["x-estate-gateway-timestamp"]) - int(first.headers["x-estate-gateway-timestamp"])
        == 30
    )


# --- robots -------------------------------------------------------------------------------------------


async def test_dingtalk_sign_query_and_markdown_with_mentions(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
    config = DingTalkChannelConfig(
        type="dingtalk", name="ding", url=receiver.url("/robot/send?access_token=tok123"), secret=secret
    )
    result = await DingTalkChannel(config, client, clock).send(NOTE, PERSON)
    assert result.outcome == "sent", result.detail
    [request] = receiver.requests
    assert request.path == "/robot/send" and request.query["access_token"] == "tok123"
    # DingTalk's documented algorithm, written out independently of the channel:
    timestamp = str(round(NOW * 1000))
    string_to_sign = f"{timestamp}\n{secret}"
    hmac_code = hmac.new(
        secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod=hashlib.sha256
    ).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(hmac_code))
    assert request.query["timestamp"] == timestamp
    assert f"sign={sign}" in request.raw_query.split("&")
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert body["at"] == {"atUserIds": ["ding-wang"], "atMobiles": [], "isAtAll": False}
    assert body["markdown"]["title"].startswith("🔴【紧急】阳光花园")
    text = body["markdown"]["text"]
    assert "@ding-wang" in text and "第2级升级" in text and "escalation level 2" in text and ACK in text


async def test_wecom_markdown_body(receiver: HttpReceiver, client: httpx.AsyncClient) -> None:
    config = WeComChannelConfig(type="wecom", name="wecom", url=receiver.url("/cgi-bin/webhook/send?key=k-1"))
    assert (await WeComChannel(config, client).send(NOTE, PERSON)).outcome == "sent"
    [request] = receiver.requests
    body = request.json()
    assert request.query == {"key": "k-1"} and request.headers["content-type"] == "application/json"
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert set(body["markdown"]) == {"content"} and "<@WangGong>" in content
    assert content.index("市电故障") < content.index("mains failure") and f"]({ACK})" in content


async def test_feishu_signed_interactive_card(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    receiver.answer(Reply(200, {"code": 0, "msg": "success", "data": {}}))
    config = FeishuChannelConfig(
        type="feishu", name="feishu", url=receiver.url("/open-apis/bot/v2/hook/t"), secret="fs-secret"
    )
    assert (await FeishuChannel(config, client, clock).send(NOTE, PERSON)).outcome == "sent"
    body = receiver.requests[0].json()
    # Feishu's documented algorithm: key = "<timestamp>\n<secret>", empty message.
    string_to_sign = f"{int(NOW)}\n{'fs-secret'}"
    sign = base64.b64encode(
        hmac.new(string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    ).decode()
    assert body["timestamp"] == str(int(NOW)) and body["sign"] == sign
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["title"] == {"tag": "plain_text", "content": "🔴【紧急】阳光花园 3号楼 市电故障"}
    assert card["header"]["template"] == "red"
    [element] = card["elements"]
    assert element["tag"] == "markdown"
    assert element["content"].startswith(f"<at id={PERSON.im['feishu']}></at>") and ACK in element["content"]


@pytest.mark.parametrize(
    ("kind", "reply", "retryable"),
    [
        ("dingtalk", {"errcode": 310000, "errmsg": "sign not match"}, False),
        ("dingtalk", {"errcode": 130101, "errmsg": "send too fast"}, True),
        ("wecom", {"errcode": 93000, "errmsg": "invalid webhook url"}, False),
        ("wecom", {"errcode": 45009, "errmsg": "api freq out of limit"}, True),
        ("feishu", {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}, False),
        ("feishu", {"code": 11232, "msg": "frequency limited"}, True),
    ],
)
async def test_robot_error_codes_are_failures(
    receiver: HttpReceiver, client: httpx.AsyncClient, kind: str, reply: dict[str, Any], retryable: bool
) -> None:
    receiver.answer(Reply(200, reply))
    url = receiver.url("/robot?k=1")
    channel: DingTalkChannel | WeComChannel | FeishuChannel
    if kind == "dingtalk":
        channel = DingTalkChannel(
            DingTalkChannelConfig(type="dingtalk", name=kind, url=url, secret="SECx"), client
        )
    elif kind == "wecom":
        channel = WeComChannel(WeComChannelConfig(type="wecom", name=kind, url=url), client)
    else:
        channel = FeishuChannel(FeishuChannelConfig(type="feishu", name=kind, url=url), client)
    result = await channel.send(NOTE, PERSON)
    assert result.outcome == "failed" and result.retryable is retryable
    assert str(next(iter(reply.values()))) in result.detail


# --- retry and fall-over over real HTTP -----------------------------------------------------------------


async def test_500_is_retried_then_falls_over_to_the_next_channel(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    receiver.answer(Reply(500), Reply(500), Reply(500))
    ding = DingTalkChannel(
        DingTalkChannelConfig(type="dingtalk", name="ding", url=receiver.url("/ding?access_token=t")), client
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    stats = DeliveryStats()
    records = await deliver(
        [webhook(receiver, client, clock), ding],
        NOTE,
        PERSON,
        attempts=3,
        backoff=1,
        sleep=sleep,
        stats=stats,
    )
    assert [(r.channel, r.outcome, r.retryable) for r in records] == [
        ("hook", "failed", True),
        ("hook", "failed", True),
        ("hook", "failed", True),
        ("ding", "sent", False),
    ]
    assert [r.path for r in receiver.requests] == ["/hook", "/hook", "/hook", "/ding"]
    assert waits == [1, 2] and "HTTP 500" in records[0].detail
    assert stats.snapshot()["hook"]["failed"] == 3 and stats.snapshot()["ding"]["sent"] == 1


async def test_400_is_not_retried_and_the_sms_gateway_gets_phone_and_text(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    receiver.answer(Reply(400, {"error": "unknown field"}), Reply(200, {"code": 0, "msg": "queued"}))
    records = await deliver(
        [webhook(receiver, client, clock), sms(receiver, client)], NOTE, PERSON, attempts=3
    )
    assert [(r.channel, r.outcome) for r in records] == [("hook", "failed"), ("sms", "sent")]
    assert not records[0].retryable and "HTTP 400" in records[0].detail
    request = receiver.requests[1]
    assert request.headers["authorization"] == "Bearer sms-token"
    assert request.json() == {"to": "13800138000", "text": templates.sms_text(NOTE), "sender": "estate-gw"}


async def test_sms_429_is_retried_and_a_refusal_code_is_a_failure(
    receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    receiver.answer(
        Reply(429, {"msg": "slow down"}),
        Reply(200, {"code": 0}),
        Reply(200, {"code": 17, "msg": "blacklisted"}),
    )

    async def sleep(seconds: float) -> None:
        pass

    records = await deliver([sms(receiver, client)], NOTE, PERSON, attempts=3, sleep=sleep)
    assert [(r.outcome, r.retryable) for r in records] == [("failed", True), ("sent", False)]
    refused = await sms(receiver, client).send(NOTE, PERSON)
    assert refused.outcome == "failed" and not refused.retryable and "code=17" in refused.detail


async def test_timeouts_and_refused_connections_are_retryable(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    receiver.answer(Reply(200, delay=1.0))
    slow = await webhook(receiver, client, clock, timeout=0.2).send(NOTE, PERSON)
    assert slow.outcome == "failed" and slow.retryable and "timeout" in slow.detail
    config = WebhookChannelConfig(
        type="webhook", name="down", url=f"http://127.0.0.1:{free_port()}/h", secret=SECRET
    )
    down = await WebhookChannel(config, client, clock).send(NOTE, PERSON)
    assert down.outcome == "failed" and down.retryable and "ConnectError" in down.detail


# --- e-mail ---------------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(login=("gw", "mail-password")) as server:
        yield server


def smtp_channel(server: SmtpReceiver, password: str = "mail-password") -> SmtpChannel:
    config = SmtpChannelConfig(
        type="smtp",
        name="mail",
        host="127.0.0.1",
        port=server.port,
        security="plain",
        username="gw",
        password=password,
        sender="Estate Gateway <gw@example.com>",
        timeout=5,
    )
    return SmtpChannel(config)


async def test_smtp_message_has_a_utf8_zh_subject_and_both_languages(smtp_server: SmtpReceiver) -> None:
    result = await smtp_channel(smtp_server).send(NOTE, PERSON)
    assert result.outcome == "sent", result.detail
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["wang@example.com"] and envelope.mail_from == "gw@example.com"
    raw = envelope.original_content or b""
    assert b"Subject: =?utf-8?" in raw  # RFC 2047 encoded on the wire
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == templates.email_subject(NOTE)
    assert message["Subject"].startswith("【紧急】阳光花园 3号楼 市电故障")
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert "【紧急】3号楼 市电故障" in body and "[Critical] Block 3 mains failure" in body and ACK in body
    assert body.index("市电故障") < body.index("mains failure")


@pytest.mark.parametrize(
    ("address", "password", "retryable", "detail"),
    [
        ("nobody@example.com", "mail-password", False, "550"),
        ("busy@example.com", "mail-password", True, "451"),
        ("wang@example.com", "wrong", False, "SMTP 535"),
    ],
)
async def test_smtp_refusals(
    smtp_server: SmtpReceiver, address: str, password: str, retryable: bool, detail: str
) -> None:
    result = await smtp_channel(smtp_server, password).send(NOTE, replace(PERSON, email=address))
    assert result.outcome == "failed" and result.retryable is retryable and detail in result.detail
    assert smtp_server.envelopes == []


async def test_smtp_server_down_is_retryable() -> None:
    config = SmtpChannelConfig(
        type="smtp",
        name="mail",
        host="127.0.0.1",
        port=free_port(),
        security="plain",
        sender="gw@example.com",
        timeout=2,
    )
    result = await SmtpChannel(config).send(NOTE, PERSON)
    assert result.outcome == "failed" and result.retryable


# --- MQTT -----------------------------------------------------------------------------------------------


async def test_mqtt_notification_arrives_on_the_topic(broker: MosquittoProcess) -> None:
    async with (
        aiomqtt.Client("127.0.0.1", broker.port, identifier=None, timeout=10) as listener,
        aiomqtt.Client("127.0.0.1", broker.port, identifier=None, timeout=10) as gateway,
    ):
        await listener.subscribe("estate-gateway/+/notify/#", qos=1)

        async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            await gateway.publish(topic, payload, qos=qos, retain=retain)

        result = await MqttChannel(MqttChannelConfig(type="mqtt", name="mqtt"), publish).send(NOTE, PERSON)
        assert result.outcome == "sent", result.detail
        async with asyncio.timeout(5):
            message = await anext(aiter(listener.messages))
    assert str(message.topic) == "estate-gateway/sunshine/notify/p-wang" and message.qos == 1
    assert isinstance(message.payload, bytes)
    body = json.loads(message.payload)
    assert body["person"] == "p-wang" and body["notification"]["incident_ids"] == [42]
