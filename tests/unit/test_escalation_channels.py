"""Notification channels through their seams: templates, config, signing, payload formats (httpx
MockTransport), the SMS success test, the console feed, and the retry / fall-over wrapper."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from gateway.config.escalation import EscalationConfig
from gateway.escalation import templates
from gateway.escalation.channel_config import (
    ChannelConfig,
    ConsoleChannelConfig,
    DingTalkChannelConfig,
    FeishuChannelConfig,
    MqttChannelConfig,
    SmsHttpChannelConfig,
    SmtpChannelConfig,
    WebhookChannelConfig,
    WeComChannelConfig,
)
from gateway.escalation.channels import (
    ChannelSetupError,
    ConsoleChannel,
    DingTalkChannel,
    FeishuChannel,
    MqttChannel,
    NoticeFeed,
    SmsHttpChannel,
    SmtpChannel,
    WebhookChannel,
    WeComChannel,
    build_channels,
    sign_webhook,
    verify_signature,
)
from gateway.escalation.channels.mqtt import topic_for
from gateway.escalation.channels.payload import delivery_id
from gateway.escalation.channels.robots import dingtalk_sign, feishu_sign
from gateway.escalation.delivery import DeliveryStats, deliver
from gateway.escalation.types import Delivery, Notification, Person
from gateway.model import ManualClock, Priority

ACK = "https://gw.example.com/ack/42?sig=abc123"
PERSON = Person(
    "p-wang", "王工", phone="+8613800138000", email="wang@example.com", im={"dingtalk": "ding-wang"}
)


def sample(**changes: Any) -> Notification:
    base = Notification(
        estate="sunshine",
        estate_name_zh="阳光花园",
        estate_name_en="Sunshine Garden",
        incident_ids=(42,),
        priority=Priority.CRITICAL,
        title_zh="3号楼 市电故障",
        title_en="Block 3 mains failure",
        device="ats-3",
        location="3号楼 地下室 配电房",
        opened_at=1_700_000_000.0,  # 2023-11-15 06:13:20 in Shanghai (22:13:20 UTC)
        step=1,
        ack_url=ACK,
    )
    return replace(base, **changes)


def flood(count: int = 12) -> Notification:
    titles = tuple((f"门禁{i}号 强行开门", f"Door {i} forced open") for i in range(1, count + 1))
    return sample(
        incident_ids=tuple(range(100, 100 + count)),
        title_zh=f"{count} 起事件",
        title_en=f"{count} incidents",
        member_titles=titles,
        ack_url=None,
    )


# --- templates ----------------------------------------------------------------------------------------


def test_plain_text_is_zh_first_then_en_with_facts_and_ack_link() -> None:
    text = templates.plain_text(sample())
    zh, en = text.split("\n\n")
    assert zh.startswith("【紧急】3号楼 市电故障")
    assert "小区：阳光花园" in zh and "位置：3号楼 地下室 配电房" in zh and "设备：ats-3" in zh
    assert "2023-11-15 06:13:20（Asia/Shanghai）" in zh  # estate timezone, not UTC
    assert "第2级升级" in zh and "#42" in zh and f"确认：{ACK}" in zh
    assert en.startswith("[Critical] Block 3 mains failure")
    assert "Estate: Sunshine Garden" in en and "escalation level 2" in en and f"Acknowledge: {ACK}" in en


@pytest.mark.parametrize(
    ("priority", "zh"),
    [(Priority.CRITICAL, "紧急"), (Priority.HIGH, "高"), (Priority.MEDIUM, "中"), (Priority.LOW, "低")],
)
def test_priority_labels_in_zh(priority: Priority, zh: str) -> None:
    assert f"优先级：{zh}" in templates.plain_text(sample(priority=priority))


def test_first_notification_is_level_one_not_an_escalation() -> None:
    text = templates.plain_text(sample(step=0))
    assert "第1级（首次通知）" in text and "升级" not in text


def test_flood_lists_count_and_first_titles_in_both_languages() -> None:
    text = templates.plain_text(flood(12))
    assert "告警洪流：共 12 起事件" in text and "Alarm flood: 12 incidents" in text
    assert "1. 门禁1号 强行开门" in text and "5. 门禁5号 强行开门" in text
    assert "门禁6号" not in text and "… 另有 7 起" in text
    assert "5. Door 5 forced open" in text and "… and 7 more" in text
    assert "#100, #101, #102, #103, #104 (+7)" in text


def test_sms_is_short_zh_first_and_keeps_the_ack_link() -> None:
    text = templates.sms_text(sample())
    assert len(text) <= templates.SMS_MAX_CHARS
    assert text.startswith("【阳光花园】紧急 3号楼 市电故障")
    assert text.endswith(ACK)
    long = sample(title_zh="很长的标题" * 40, title_en="long title " * 40)
    cut = templates.sms_text(long)
    assert len(cut) <= templates.SMS_MAX_CHARS and cut.endswith(ACK) and "…" in cut
    assert "[Critical]" not in cut  # English dropped first when it does not fit


def test_sms_of_a_flood_gives_the_count() -> None:
    assert "12起事件" in templates.sms_text(flood(12))


def test_email_subject_and_markdown() -> None:
    subject = templates.email_subject(flood(3))
    assert subject.startswith("【紧急】阳光花园 3 起事件（3起）") and "(3 incidents)" in subject
    title, body = templates.markdown(sample(), mention="@13800138000")
    assert title.startswith("🔴【紧急】阳光花园")
    assert body.splitlines()[1] == "@13800138000"
    assert f"[确认 / Acknowledge]({ACK})" in body and "**[Critical] Block 3 mains failure**" in body


def test_unknown_timezone_falls_back_to_utc() -> None:
    assert templates.local_time(sample(timezone="Mars/Olympus")) == "2023-11-14 22:13:20 UTC"


# --- config -------------------------------------------------------------------------------------------

CHANNELS = TypeAdapter(list[ChannelConfig])


def test_config_picks_the_model_by_type_and_forbids_unknown_keys() -> None:
    configs = CHANNELS.validate_python(
        [
            {"type": "webhook", "name": "hook", "url": "https://x.example/h", "secret": "s" * 16},
            {
                "type": "dingtalk",
                "name": "ding",
                "url": "https://oapi.dingtalk.com/robot/send?access_token=t",
            },
            {
                "type": "wecom",
                "name": "wecom",
                "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            },
            {"type": "feishu", "name": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/t"},
            {"type": "smtp", "name": "mail", "host": "smtp.example.com", "sender": "gw@example.com"},
            {"type": "mqtt", "name": "mqtt"},
            {"type": "console", "name": "console"},
            {
                "type": "sms_http",
                "name": "sms",
                "url": "https://sms.example/send",
                "fields": {"to": "{phone}"},
            },
        ]
    )
    assert [type(c) for c in configs] == [
        WebhookChannelConfig,
        DingTalkChannelConfig,
        WeComChannelConfig,
        FeishuChannelConfig,
        SmtpChannelConfig,
        MqttChannelConfig,
        ConsoleChannelConfig,
        SmsHttpChannelConfig,
    ]
    with pytest.raises(ValidationError, match="Extra inputs"):
        CHANNELS.validate_python([{"type": "console", "name": "c", "colour": "red"}])
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        CHANNELS.validate_python([{"type": "pager", "name": "p"}])
    with pytest.raises(ValidationError, match="at least 16"):
        CHANNELS.validate_python([{"type": "webhook", "name": "h", "url": "https://x/h", "secret": "short"}])


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="appear twice"):
        EscalationConfig.model_validate({"channels": [{"type": "console", "name": "c"}] * 2})
    with pytest.raises(ValidationError, match="flat fields"):
        SmsHttpChannelConfig.model_validate(
            {"type": "sms_http", "name": "s", "url": "https://s/", "encoding": "form", "fields": {"a": [1]}}
        )
    with pytest.raises(ValidationError, match="both 'username' and 'password'"):
        SmtpChannelConfig.model_validate(
            {"type": "smtp", "name": "m", "host": "h", "sender": "a@b", "username": "u"}
        )
    assert (
        SmtpChannelConfig(type="smtp", name="m", host="h", sender="a@b", security="ssl").effective_port == 465
    )


def test_every_config_field_has_a_description() -> None:
    for model in (
        WebhookChannelConfig,
        SmsHttpChannelConfig,
        DingTalkChannelConfig,
        WeComChannelConfig,
        FeishuChannelConfig,
        SmtpChannelConfig,
        MqttChannelConfig,
        ConsoleChannelConfig,
        EscalationConfig,
    ):
        missing = [name for name, info in model.model_fields.items() if not info.description]
        assert not missing, f"{model.__name__}: {missing}"


# --- signing ------------------------------------------------------------------------------------------


def test_webhook_signature_verifies_with_the_secret_only_and_not_when_stale() -> None:
    body = b'{"a": 1}'
    signature = sign_webhook("s" * 20, "1700000000", body)
    assert signature == "sha256=" + hmac.new(b"s" * 20, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert verify_signature("s" * 20, "1700000000", signature, body, now=1_700_000_100)
    assert not verify_signature("t" * 20, "1700000000", signature, body, now=1_700_000_100)
    assert not verify_signature("s" * 20, "1700000000", signature, body + b" ", now=1_700_000_100)
    assert not verify_signature("s" * 20, "1700000001", signature, body, now=1_700_000_100)  # ts is signed
    assert not verify_signature("s" * 20, "1700000000", signature, body, now=1_700_001_000)  # replayed late


def test_dingtalk_and_feishu_signs_follow_their_sample_code() -> None:
    # DingTalk's documented Python: hmac.new(secret, f"{ts}\n{secret}", sha256) → base64 → quote_plus.
    secret, ts = "SECabc123", 1_700_000_000_000
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), digestmod=hashlib.sha256).digest()
    assert dingtalk_sign(secret, ts) == base64.b64encode(mac).decode()
    # Feishu's documented Python: hmac.new(f"{ts}\n{secret}".encode(), digestmod=sha256) (empty message).
    mac = hmac.new(f"{1_700_000_000}\n{secret}".encode(), digestmod=hashlib.sha256).digest()
    assert feishu_sign(secret, 1_700_000_000) == base64.b64encode(mac).decode()


# --- payload formats through a MockTransport ------------------------------------------------------------


class Recorder:
    def __init__(self, *responses: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._responses.pop(0) if self._responses else httpx.Response(200, json={"errcode": 0})

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@pytest.fixture
async def mock() -> AsyncIterator[tuple[Recorder, httpx.AsyncClient]]:
    recorder = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        yield recorder, client


async def test_dingtalk_mentions_by_user_id_else_mobile(mock: tuple[Recorder, httpx.AsyncClient]) -> None:
    recorder, client = mock
    channel = DingTalkChannel(
        DingTalkChannelConfig(type="dingtalk", name="d", url="https://d.example/robot/send?access_token=t"),
        client,
    )
    assert (await channel.send(sample(), PERSON)).outcome == "sent"
    body = recorder.json()
    assert body["msgtype"] == "markdown" and body["at"] == {
        "atUserIds": ["ding-wang"],
        "atMobiles": [],
        "isAtAll": False,
    }
    assert "@ding-wang" in body["markdown"]["text"]
    await channel.send(sample(), replace(PERSON, im={}))
    assert (
        recorder.json()["at"]["atMobiles"] == ["13800138000"]
        and "@13800138000" in recorder.json()["markdown"]["text"]
    )
    assert "timestamp" not in recorder.requests[-1].url.params  # no secret: unsigned


async def test_wecom_text_format_mentions_by_mobile(mock: tuple[Recorder, httpx.AsyncClient]) -> None:
    recorder, client = mock
    config = WeComChannelConfig(type="wecom", name="w", url="https://w.example/send?key=k", format="text")
    await WeComChannel(config, client).send(sample(), replace(PERSON, im={"wecom": "WangGong"}))
    text = recorder.json()["text"]
    assert text["mentioned_list"] == ["WangGong"] and text["mentioned_mobile_list"] == ["13800138000"]
    assert text["content"].startswith("【紧急】") and len(text["content"].encode()) <= 2048


async def test_feishu_unsigned_card_and_old_status_code(mock: tuple[Recorder, httpx.AsyncClient]) -> None:
    recorder, client = mock
    recorder._responses = [httpx.Response(200, json={"StatusCode": 0, "StatusMessage": "success"})]
    channel = FeishuChannel(
        FeishuChannelConfig(type="feishu", name="f", url="https://f.example/hook/t"), client
    )
    assert (await channel.send(sample(), replace(PERSON, im={"feishu": "ou_1"}))).outcome == "sent"
    body = recorder.json()
    assert "sign" not in body and body["card"]["header"]["template"] == "red"
    assert body["card"]["elements"][0]["content"].startswith("<at id=ou_1></at>")


@pytest.mark.parametrize(
    ("reply", "outcome", "retryable"),
    [
        (httpx.Response(200, json={"code": 0, "msg": "success"}), "sent", False),
        (httpx.Response(200, json={"code": 19021, "msg": "sign match fail"}), "failed", False),
        (httpx.Response(400, json={"code": 11232, "msg": "frequency limited"}), "failed", True),
        (httpx.Response(200, text="<html>proxy</html>"), "failed", False),
        (httpx.Response(502, text="bad gateway"), "failed", True),
    ],
)
async def test_feishu_reply_codes(reply: httpx.Response, outcome: str, retryable: bool) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(reply))) as client:
        channel = FeishuChannel(
            FeishuChannelConfig(type="feishu", name="f", url="https://f.example/h"), client
        )
        result = await channel.send(sample(), PERSON)
    assert (result.outcome, result.retryable) == (outcome, retryable)


def sms_config(**changes: Any) -> SmsHttpChannelConfig:
    base: dict[str, Any] = {
        "type": "sms_http",
        "name": "sms",
        "url": "https://sms.example/send",
        "fields": {"mobile": "{phone}", "content": "{text}", "meta": {"src": "gw", "to": ["{phone}"]}},
        "auth_header": "Bearer tok",
        "phone_format": "national_cn",
        "success": {"path": "result.code", "value": 0, "retryable_values": [1001]},
    }
    return SmsHttpChannelConfig.model_validate(base | changes)


@pytest.mark.parametrize(
    ("reply", "outcome", "retryable"),
    [
        ({"result": {"code": 0}}, "sent", False),
        ({"result": {"code": "0"}}, "sent", False),
        ({"result": {"code": 1001}}, "failed", True),
        ({"result": {"code": 2}}, "failed", False),
        ({"error": "x"}, "failed", False),
    ],
)
async def test_sms_success_path(reply: dict[str, Any], outcome: str, retryable: bool) -> None:
    recorder = Recorder(httpx.Response(200, json=reply))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        result = await SmsHttpChannel(sms_config(), client).send(sample(), PERSON)
    assert (result.outcome, result.retryable) == (outcome, retryable)
    sent = recorder.json()
    assert sent["mobile"] == "13800138000" and sent["meta"] == {"src": "gw", "to": ["13800138000"]}
    assert sent["content"] == templates.sms_text(sample())
    assert recorder.requests[0].headers["authorization"] == "Bearer tok"


async def test_sms_form_and_query_encodings(mock: tuple[Recorder, httpx.AsyncClient]) -> None:
    recorder, client = mock
    fields = {"to": "{phone}", "msg": "{text}"}
    await SmsHttpChannel(sms_config(encoding="form", fields=fields, success=None), client).send(
        sample(), PERSON
    )
    form = urllib.parse.parse_qs(recorder.requests[-1].content.decode())
    assert form["to"] == ["13800138000"] and form["msg"][0].startswith("【阳光花园】")
    config = sms_config(method="GET", encoding="query", fields=fields, success=None, phone_format="e164")
    assert (await SmsHttpChannel(config, client).send(sample(), PERSON)).outcome == "sent"
    assert (
        recorder.requests[-1].method == "GET" and recorder.requests[-1].url.params["to"] == "+8613800138000"
    )


async def test_missing_contacts_fail_without_retry(mock: tuple[Recorder, httpx.AsyncClient]) -> None:
    recorder, client = mock
    nobody = Person("p-x", "X")
    sms = await SmsHttpChannel(sms_config(), client).send(sample(), nobody)
    mail = await SmtpChannel(SmtpChannelConfig(type="smtp", name="m", host="127.0.0.1", sender="a@b")).send(
        sample(), nobody
    )
    for result in (sms, mail):
        assert result.outcome == "failed" and not result.retryable
    assert recorder.requests == []


async def test_bad_url_is_not_retryable() -> None:
    async with httpx.AsyncClient() as client:
        config = WebhookChannelConfig(type="webhook", name="h", url="https://x.example/h", secret="s" * 16)
        # the config pattern stops other schemes; a channel built around it still answers with a Delivery
        result = await WebhookChannel(config.model_copy(update={"url": "ftp://x/h"}), client).send(
            sample(), PERSON
        )
    assert result.outcome == "failed" and not result.retryable and "bad URL" in result.detail


async def test_build_channels_by_name_needs_publish_and_feed() -> None:
    configs = CHANNELS.validate_python([{"type": "mqtt", "name": "m"}, {"type": "console", "name": "c"}])
    async with httpx.AsyncClient() as client:
        with pytest.raises(ChannelSetupError, match="broker connection"):
            build_channels(configs, client=client)

        async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            pass

        built = build_channels(configs, client=client, publish=publish, feed=NoticeFeed())
    assert {name: type(channel) for name, channel in built.items()} == {"m": MqttChannel, "c": ConsoleChannel}


# --- mqtt topic, console feed -----------------------------------------------------------------------


def test_mqtt_topic_keeps_ids_in_one_level() -> None:
    person = replace(PERSON, id="a/b+#")
    assert (
        topic_for("estate-gateway/{estate}/notify/{person}", sample(), person)
        == "estate-gateway/sunshine/notify/a_b__"
    )


async def test_mqtt_publish_errors_are_retryable() -> None:
    async def broken(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        raise ConnectionError("not connected")

    result = await MqttChannel(MqttChannelConfig(type="mqtt", name="m"), broken).send(sample(), PERSON)
    assert result.outcome == "failed" and result.retryable and "not connected" in result.detail


async def test_console_feed_fans_out_and_drops_oldest_when_full() -> None:
    feed = NoticeFeed()
    channel = ConsoleChannel(ConsoleChannelConfig(type="console", name="console"), feed)
    alone = await channel.send(sample(), PERSON)
    assert alone.outcome == "failed" and not alone.retryable  # nobody watching: fall over to the next channel
    slow, fast = feed.subscribe(maxsize=2), feed.subscribe(maxsize=10)
    for step in range(3):
        assert (await channel.send(sample(step=step), PERSON)).outcome == "sent"
    assert [(await slow.get()).notification.step for _ in range(2)] == [1, 2] and slow.dropped == 1
    assert (await fast.get()).person_id == "p-wang" and fast.queue.qsize() == 2
    slow.close()
    fast.close()
    relaxed = ConsoleChannel(ConsoleChannelConfig(type="console", name="c", require_subscriber=False), feed)
    assert (await relaxed.send(sample(), PERSON)).outcome == "sent"


def test_delivery_id_is_stable_across_retries_and_differs_per_person() -> None:
    assert delivery_id(sample(), PERSON) == delivery_id(sample(), PERSON)
    assert delivery_id(sample(), PERSON) != delivery_id(sample(), replace(PERSON, id="p-li"))
    assert delivery_id(sample(), PERSON) != delivery_id(sample(step=2), PERSON)


# --- retry and fall-over ------------------------------------------------------------------------------


class Scripted:
    """A channel that answers from a script (the last answer repeats)."""

    def __init__(self, name: str, *results: Delivery | Exception) -> None:
        self.name = name
        self.results = list(results)
        self.calls = 0

    async def send(self, notification: Notification, person: Person) -> Delivery:
        self.calls += 1
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result


SENT = Delivery("sent", detail="ok")
TRANSIENT = Delivery("failed", retryable=True, detail="HTTP 500")
PERMANENT = Delivery("failed", retryable=False, detail="HTTP 400")


class Sleeps:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


async def test_retryable_failures_back_off_then_fall_over() -> None:
    clock = ManualClock()
    sleep, stats = Sleeps(clock), DeliveryStats()
    first, second = Scripted("hook", TRANSIENT), Scripted("sms", SENT)
    records = await deliver(
        [first, second], sample(), PERSON, attempts=3, backoff=2, sleep=sleep, clock=clock, stats=stats
    )
    assert [(r.channel, r.outcome, r.attempt) for r in records] == [
        ("hook", "failed", 1),
        ("hook", "failed", 2),
        ("hook", "failed", 3),
        ("sms", "sent", 1),
    ]
    assert sleep.waits == [2, 4]  # no wait after the last try: fall over at once
    assert [r.ts - clock.now() for r in records] == [-6, -4, 0, 0]
    assert stats.channels["hook"].failed == 3 and stats.channels["hook"].consecutive_failures == 3
    assert stats.channels["sms"].sent == 1 and stats.failing(3) == ["hook"]
    assert stats.snapshot()["hook"]["last_error"] == "HTTP 500"


async def test_permanent_failure_is_not_retried_and_success_stops_the_chain() -> None:
    sleep = Sleeps(ManualClock())
    bad, good, unused = Scripted("a", PERMANENT), Scripted("b", TRANSIENT, SENT), Scripted("c", SENT)
    records = await deliver([bad, good, unused], sample(), PERSON, attempts=3, backoff=1, sleep=sleep)
    assert [(r.channel, r.outcome) for r in records] == [("a", "failed"), ("b", "failed"), ("b", "sent")]
    assert bad.calls == 1 and unused.calls == 0 and sleep.waits == [1]


async def test_backoff_is_capped_and_a_raising_channel_is_recorded() -> None:
    sleep = Sleeps(ManualClock())
    records = await deliver(
        [Scripted("a", TRANSIENT)], sample(), PERSON, attempts=5, backoff=10, max_backoff=25, sleep=sleep
    )
    assert sleep.waits == [10, 20, 25, 25] and len(records) == 5
    records = await deliver([Scripted("boom", RuntimeError("bug"))], sample(), PERSON, sleep=sleep)
    assert len(records) == 1 and records[0].outcome == "failed" and "RuntimeError: bug" in records[0].detail


async def test_a_hanging_channel_is_cut_by_the_attempt_timeout() -> None:
    class Hangs:
        name = "hangs"

        async def send(self, notification: Notification, person: Person) -> Delivery:
            await asyncio.sleep(10)
            return SENT

    records = await deliver([Hangs()], sample(), PERSON, attempts=1, attempt_timeout=0.05)
    assert records[0].outcome == "failed" and records[0].retryable and "0.05" in records[0].detail


async def test_stats_recover_after_a_success() -> None:
    stats = DeliveryStats()
    channel = Scripted("a", TRANSIENT, SENT)
    await deliver(
        [channel], sample(), PERSON, attempts=2, backoff=0, stats=stats, sleep=Sleeps(ManualClock())
    )
    assert stats.channels["a"].consecutive_failures == 0 and stats.channels["a"].failed == 1
    assert stats.failing(1) == []
