"""A generic HTTP SMS gateway: a request template filled with {phone} and {text}.

    fields {to: "{phone}", content: "{text}"} ─▶ JSON body | form body | query string ─▶ gateway
    reply: 2xx, and (when `success` is set) the JSON value at `success.path` equals `success.value`

Kept generic on purpose: Aliyun (Dysmsapi) and Tencent Cloud SMS sign every request with their own
schemes (ACS3-HMAC-SHA256, TC3-HMAC-SHA256) and only send pre-approved templates; we cannot test those
here without accounts, so they need a relay or a dedicated channel. Gateways with a static token
(most carrier and intranet SMS gateways, or such a relay) fit this channel.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import JsonValue

from gateway.escalation import templates
from gateway.escalation.channel_config import SmsHttpChannelConfig, SmsSuccessConfig
from gateway.escalation.channels.http import HttpReply, failed, request, status_failure
from gateway.escalation.types import Delivery, Notification, Person

__all__ = ["SmsHttpChannel", "fill_fields", "format_phone"]


def format_phone(phone: str, style: str) -> str:
    phone = phone.replace(" ", "").replace("-", "")
    if style == "national_cn" and phone.startswith("+86"):
        return phone[3:]
    return phone


def fill_fields(value: JsonValue, phone: str, text: str) -> JsonValue:
    """Replace {phone} and {text} in every string of the template (plain replace: JSON braces are safe)."""
    if isinstance(value, str):
        return value.replace("{phone}", phone).replace("{text}", text)
    if isinstance(value, dict):
        return {key: fill_fields(item, phone, text) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_fields(item, phone, text) for item in value]
    return value


def _at_path(document: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return False, None
    return True, document


def _same(found: Any, wanted: str | int | bool) -> bool:
    # Gateways disagree on 0 vs "0"; compare as text, but keep booleans apart from 1/0.
    if isinstance(found, bool) or isinstance(wanted, bool):
        return found is wanted
    return str(found) == str(wanted)


def check_success(reply: HttpReply, success: SmsSuccessConfig) -> Delivery:
    document = reply.json()
    if document is None:
        return failed(f"reply is not JSON: {reply.snippet()}", retryable=False)
    present, value = _at_path(document, success.path)
    if present and _same(value, success.value):
        return Delivery("sent", detail=f"HTTP {reply.status}, {success.path}={value!r}")
    retryable = present and any(_same(value, v) for v in success.retryable_values)
    shown = f"{success.path}={value!r}" if present else f"no {success.path} in reply"
    return failed(f"gateway refused: {shown}: {reply.snippet()}", retryable=retryable)


class SmsHttpChannel:
    """Sends `templates.sms_text` to the person's phone through a configurable HTTP gateway."""

    def __init__(self, config: SmsHttpChannelConfig, client: httpx.AsyncClient) -> None:
        self.name = config.name
        self.config = config
        self._client = client

    def _request_args(self, phone: str, text: str) -> dict[str, Any]:
        fields = fill_fields(dict(self.config.fields), phone, text)
        headers = dict(self.config.headers)
        if self.config.auth_header:
            headers["Authorization"] = self.config.auth_header
        args: dict[str, Any] = {"headers": headers}
        if self.config.encoding == "json":
            args["json"] = fields
        elif self.config.encoding == "form":
            args["data"] = fields
        else:
            args["params"] = fields
        return args

    async def send(self, notification: Notification, person: Person) -> Delivery:
        if not person.phone:
            return failed(f"no phone number for {person.id}", retryable=False)
        phone = format_phone(person.phone, self.config.phone_format)
        text = templates.sms_text(notification, self.config.max_chars)
        reply = await request(
            self._client,
            self.config.method,
            self.config.url,
            seconds=self.config.timeout,
            **self._request_args(phone, text),
        )
        if not isinstance(reply, HttpReply):
            return reply
        failure = status_failure(reply)
        if failure is not None:
            return failure
        if self.config.success is None:
            return Delivery("sent", detail=f"HTTP {reply.status}")
        return check_success(reply, self.config.success)
