"""Group robots of Chinese IM platforms: DingTalk (钉钉), WeCom (企业微信), Feishu (飞书).

    DingTalk  POST <webhook>[&timestamp=<ms>&sign=<urlenc(b64(HMAC-SHA256(secret, "<ms>\\n<secret>")))>]
              {"msgtype": "markdown", "markdown": {title, text}, "at": {atMobiles, atUserIds, isAtAll}}
              → {"errcode": 0, "errmsg": "ok"}
    WeCom     POST <webhook>  {"msgtype": "markdown", "markdown": {content}}   (@ as <@userid>)
                           or {"msgtype": "text", "text": {content, mentioned_list, mentioned_mobile_list}}
              → {"errcode": 0, "errmsg": "ok"}
    Feishu    POST <webhook>  {"timestamp": "<s>", "sign": b64(HMAC-SHA256(key="<s>\\n<secret>", msg="")),
                               "msg_type": "interactive", "card": {header, elements: [markdown]}}
              → {"code": 0, "msg": "success"}   (older deployments: {"StatusCode": 0})

All three answer HTTP 200 with an error code in the body, so the code decides: 0 is sent; the platforms'
rate-limit and "system busy" codes are retryable; anything else (bad sign, keyword missing, bad token)
is not. HTTP 5xx/429/timeouts stay retryable.

Why not Apprise (evaluated: apprise 2.2.0 installed in the venv and run against a local fake robot):
- It reports success for HTTP 200 whatever the body says: DingTalk {"errcode": 310000, "sign not match"}
  and {"errcode": 130101, "send too fast"}, WeCom {"errcode": 45009} and Feishu {"code": 19021} all came
  back as success; only the HTTP status is checked in its dingtalk, wecombot and feishu plugins.
- Its result is a bool per service: no way to tell a retryable failure from a permanent one.
- Feishu has no signing option; WeCom has no @-mention; DingTalk @ only by phone.
- Endpoints are hard-coded (oapi.dingtalk.com, qyapi.weixin.qq.com, open.feishu.cn): no private relay
  and no local test server without patching class attributes.
- async_notify did not block the loop (it runs the requests-based plugins in a thread pool), but that
  is the only requirement it met, and it would pull in requests, markdown, click, PyYAML.
So these are ~200 lines on httpx, which the gateway already uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote_plus

import httpx

from gateway.escalation import templates
from gateway.escalation.channel_config import DingTalkChannelConfig, FeishuChannelConfig, WeComChannelConfig
from gateway.escalation.channels.http import RETRYABLE_STATUS, HttpReply, failed, request, status_failure
from gateway.escalation.types import Delivery, Notification, Person
from gateway.model import Clock, Priority, SystemClock

__all__ = [
    "DINGTALK_RETRYABLE",
    "FEISHU_RETRYABLE",
    "WECOM_RETRYABLE",
    "DingTalkChannel",
    "FeishuChannel",
    "WeComChannel",
    "dingtalk_sign",
    "feishu_sign",
]

# -1 system busy; 130101 "send too fast" (20/min per robot); 410100 throttled for 10 minutes.
DINGTALK_RETRYABLE = frozenset({-1, 130101, 410100})
# -1 system busy; 45009 "api freq out of limit" (20/min per robot).
WECOM_RETRYABLE = frozenset({-1, 45009})
# 11232 frequency limited (100/min, 5/s per robot); 230020 per-chat rate limit.
FEISHU_RETRYABLE = frozenset({11232, 230020})
_HEADER_COLOUR = {
    Priority.CRITICAL: "red",
    Priority.HIGH: "orange",
    Priority.MEDIUM: "yellow",
    Priority.LOW: "blue",
}
WECOM_MARKDOWN_BYTES = 4096
WECOM_TEXT_BYTES = 2048


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: base64(HMAC-SHA256(key=secret, msg="<ms>\\n<secret>")), before URL-encoding."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu 签名校验: base64(HMAC-SHA256(key="<s>\\n<secret>", msg=empty)), as their sample code does."""
    mac = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def cn_mobile(phone: str | None) -> str | None:
    """The robots @ by mainland number without the country code."""
    if not phone:
        return None
    phone = phone.replace(" ", "").replace("-", "")
    return phone[3:] if phone.startswith("+86") else phone


def _cut_bytes(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def robot_result(reply: HttpReply, code_keys: tuple[str, ...], retry_codes: frozenset[int]) -> Delivery:
    """Decide from the platform's body code, else from the HTTP status."""
    if reply.status >= 500 or reply.status in RETRYABLE_STATUS:
        return status_failure(reply) or failed(f"HTTP {reply.status}", retryable=True)
    document = reply.json()
    if isinstance(document, dict):
        for key in code_keys:
            if key in document:
                code = document[key]
                if code == 0 and 200 <= reply.status < 300:
                    return Delivery("sent", detail=f"HTTP {reply.status}, {key}=0")
                retryable = isinstance(code, int) and code in retry_codes
                return failed(f"HTTP {reply.status}, {key}={code}: {reply.snippet()}", retryable=retryable)
    failure = status_failure(reply)
    if failure is not None:
        return failure
    return failed(f"HTTP {reply.status} without {'/'.join(code_keys)}: {reply.snippet()}", retryable=False)


class _Robot:
    """Shared by the three: POST JSON to the webhook and judge the reply by the body's code."""

    code_keys: tuple[str, ...] = ("errcode",)
    retry_codes: frozenset[int] = frozenset()

    def __init__(self, name: str, url: str, timeout: float, client: httpx.AsyncClient, clock: Clock) -> None:
        self.name = name
        self._url = url
        self._timeout = timeout
        self._client = client
        self._clock = clock

    def build(self, notification: Notification, person: Person) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    async def send(self, notification: Notification, person: Person) -> Delivery:
        url, body = self.build(notification, person)
        reply = await request(self._client, "POST", url, seconds=self._timeout, json=body)
        if not isinstance(reply, HttpReply):
            return reply
        return robot_result(reply, self.code_keys, self.retry_codes)


class DingTalkChannel(_Robot):
    """DingTalk custom robot: Markdown, @ by user id (person.im['dingtalk']) or mobile, optional 加签."""

    retry_codes = DINGTALK_RETRYABLE

    def __init__(self, config: DingTalkChannelConfig, client: httpx.AsyncClient, clock: Clock | None = None):
        super().__init__(config.name, config.url, config.timeout, client, clock or SystemClock())
        self.config = config

    def build(self, notification: Notification, person: Person) -> tuple[str, dict[str, Any]]:
        user_id = person.im.get("dingtalk") if self.config.mention else None
        mobile = cn_mobile(person.phone) if self.config.mention and not user_id else None
        handle = user_id or mobile
        title, text = templates.markdown(notification, mention=f"@{handle}" if handle else "")
        body = {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
            "at": {
                "atUserIds": [user_id] if user_id else [],
                "atMobiles": [mobile] if mobile else [],
                "isAtAll": False,
            },
        }
        url = self.config.url
        if self.config.secret:
            stamp = int(self._clock.now() * 1000)
            sign = quote_plus(dingtalk_sign(self.config.secret, stamp))
            url += f"{'&' if '?' in url else '?'}timestamp={stamp}&sign={sign}"
        return url, body


class WeComChannel(_Robot):
    """WeCom group robot: Markdown (@ as <@userid>) or text (@ by user id and mobile)."""

    retry_codes = WECOM_RETRYABLE

    def __init__(self, config: WeComChannelConfig, client: httpx.AsyncClient, clock: Clock | None = None):
        super().__init__(config.name, config.url, config.timeout, client, clock or SystemClock())
        self.config = config

    def build(self, notification: Notification, person: Person) -> tuple[str, dict[str, Any]]:
        user_id = person.im.get("wecom") if self.config.mention else None
        if self.config.format == "markdown":
            _, content = templates.markdown(notification, mention=f"<@{user_id}>" if user_id else "")
            return self.config.url, {
                "msgtype": "markdown",
                "markdown": {"content": _cut_bytes(content, WECOM_MARKDOWN_BYTES)},
            }
        mobile = cn_mobile(person.phone) if self.config.mention else None
        return self.config.url, {
            "msgtype": "text",
            "text": {
                "content": _cut_bytes(templates.plain_text(notification), WECOM_TEXT_BYTES),
                "mentioned_list": [user_id] if user_id else [],
                "mentioned_mobile_list": [mobile] if mobile else [],
            },
        }


class FeishuChannel(_Robot):
    """Feishu custom robot: an interactive card with a Markdown element, @ by open_id, optional signing."""

    code_keys = ("code", "StatusCode")
    retry_codes = FEISHU_RETRYABLE

    def __init__(self, config: FeishuChannelConfig, client: httpx.AsyncClient, clock: Clock | None = None):
        super().__init__(config.name, config.url, config.timeout, client, clock or SystemClock())
        self.config = config

    def build(self, notification: Notification, person: Person) -> tuple[str, dict[str, Any]]:
        open_id = person.im.get("feishu") if self.config.mention else None
        mention = f"<at id={open_id}></at>" if open_id else ""
        title, content = templates.markdown(notification, mention=mention, heading=False)
        body: dict[str, Any] = {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": title},
                    "template": _HEADER_COLOUR[notification.priority],
                },
                "elements": [{"tag": "markdown", "content": content}],
            },
        }
        if self.config.secret:
            stamp = int(self._clock.now())
            body = {"timestamp": str(stamp), "sign": feishu_sign(self.config.secret, stamp), **body}
        return self.config.url, body
