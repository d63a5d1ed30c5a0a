"""Notification channel config: one model per channel family, picked by `type` (a discriminated union).

Escalation steps name channels by `name` in fall-over order. Secrets (webhook and robot signing keys,
SMS tokens, SMTP passwords) are written as ${ENV_VAR} and substituted by the config loader.

    channels:
      - {type: webhook, name: ops-hook, url: "https://ops.example.com/hook", secret: "${HOOK_SECRET}"}
      - type: dingtalk
        name: duty-group
        url: https://oapi.dingtalk.com/robot/send?access_token=${DING_TOKEN}
        secret: ${DING_SECRET}
      - {type: smtp, name: mail, host: smtp.example.com, sender: gw@example.com, username: gw,
         password: "${SMTP_PASSWORD}"}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

__all__ = [
    "ChannelConfig",
    "ConsoleChannelConfig",
    "DingTalkChannelConfig",
    "FeishuChannelConfig",
    "ModbusRelayChannelConfig",
    "MqttChannelConfig",
    "SmsHttpChannelConfig",
    "SmsSuccessConfig",
    "SmtpChannelConfig",
    "WeComChannelConfig",
    "WebhookChannelConfig",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_HTTP_URL = r"^https?://\S+$"
Name = Annotated[str, Field(pattern=_NAME, description="Channel name that escalation steps refer to")]
Timeout = Annotated[float, Field(gt=0, le=120, description="Seconds one delivery attempt may take")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannelConfig(_Strict):
    """POST the notification as JSON, signed with HMAC-SHA256 over "<timestamp>.<body>"."""

    type: Literal["webhook"] = Field(description="Channel family")
    name: Name
    url: str = Field(pattern=_HTTP_URL, description="Receiver URL (https in production)")
    secret: str = Field(min_length=16, description="HMAC-SHA256 signing secret; write ${ENV_VAR}")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers")
    timeout: Timeout = 10.0


class SmsSuccessConfig(_Strict):
    """How a 2xx reply of an SMS gateway tells success (many answer 200 with an error code inside)."""

    path: str = Field(description="Dotted path into the JSON reply, e.g. 'result.code' or 'Code'")
    value: str | int | bool = Field(description="The value at `path` that means accepted, e.g. 0 or 'OK'")
    retryable_values: list[str | int] = Field(
        default_factory=list, description="Values at `path` worth a retry (the gateway's rate-limit codes)"
    )


class SmsHttpChannelConfig(_Strict):
    """A generic HTTP SMS gateway. Vendors that sign each request (Aliyun, Tencent Cloud SMS) need a
    small relay or a dedicated channel; this one sends a fixed template with a static auth header."""

    type: Literal["sms_http"] = Field(description="Channel family")
    name: Name
    url: str = Field(pattern=_HTTP_URL, description="Gateway endpoint")
    method: Literal["POST", "GET"] = Field("POST", description="HTTP method")
    encoding: Literal["json", "form", "query"] = Field(
        "json", description="Where `fields` go: JSON body, form body, or the query string"
    )
    fields: dict[str, JsonValue] = Field(
        description="Request fields; strings may contain {phone} and {text}, "
        "e.g. {to: '{phone}', msg: '{text}'}"
    )
    auth_header: str | None = Field(
        None, description="Authorization header value, e.g. 'Bearer ${SMS_TOKEN}'; write ${ENV_VAR}"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers")
    phone_format: Literal["e164", "national_cn"] = Field(
        "e164", description="e164: +8613800138000; national_cn: 13800138000 (the +86 dropped)"
    )
    success: SmsSuccessConfig | None = Field(
        None, description="Success test on the JSON reply; unset: any 2xx"
    )
    max_chars: int = Field(
        200, ge=40, le=1000, description="Longest text sent (zh first, English if it fits)"
    )
    timeout: Timeout = 10.0

    @model_validator(mode="after")
    def _flat_for_forms(self) -> SmsHttpChannelConfig:
        if self.encoding != "json" and any(isinstance(v, dict | list) for v in self.fields.values()):
            raise ValueError(f"{self.encoding} encoding takes flat fields (no lists or mappings)")
        if self.method == "GET" and self.encoding != "query":
            raise ValueError("GET sends its fields in the query: set encoding: query")
        return self


class DingTalkChannelConfig(_Strict):
    """DingTalk (钉钉) custom group robot, Markdown message, @-mentioning the person."""

    type: Literal["dingtalk"] = Field(description="Channel family")
    name: Name
    url: str = Field(
        pattern=_HTTP_URL,
        description="Robot webhook with its token: https://oapi.dingtalk.com/robot/send?access_token=...",
    )
    secret: str | None = Field(
        None, description="加签 secret (SEC...): requests are signed with timestamp+sign; write ${ENV_VAR}"
    )
    mention: bool = Field(True, description="@ the person (by person.im['dingtalk'] user id, else phone)")
    timeout: Timeout = 10.0


class WeComChannelConfig(_Strict):
    """WeCom (企业微信) group robot."""

    type: Literal["wecom"] = Field(description="Channel family")
    name: Name
    url: str = Field(
        pattern=_HTTP_URL,
        description="Robot webhook with its key: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...",
    )
    format: Literal["markdown", "text"] = Field(
        "markdown",
        description="markdown @-mentions by user id only (<@userid>); text can also @ by phone",
    )
    mention: bool = Field(True, description="@ the person (person.im['wecom'] user id; text: also phone)")
    timeout: Timeout = 10.0


class FeishuChannelConfig(_Strict):
    """Feishu (飞书) custom group robot, an interactive card with Markdown (lark_md)."""

    type: Literal["feishu"] = Field(description="Channel family")
    name: Name
    url: str = Field(
        pattern=_HTTP_URL,
        description="Robot webhook: https://open.feishu.cn/open-apis/bot/v2/hook/<token>",
    )
    secret: str | None = Field(
        None, description="签名校验 secret: requests carry timestamp+sign; write ${ENV_VAR}"
    )
    mention: bool = Field(True, description="@ the person by person.im['feishu'] (open_id / user_id)")
    timeout: Timeout = 10.0


class SmtpChannelConfig(_Strict):
    """E-mail through an SMTP relay, plain-text body zh then en, UTF-8 subject."""

    type: Literal["smtp"] = Field(description="Channel family")
    name: Name
    host: str = Field(description="SMTP server host")
    port: int | None = Field(None, ge=1, le=65535, description="Port; unset: 587 starttls, 465 ssl, 25 plain")
    security: Literal["starttls", "ssl", "plain"] = Field(
        "starttls",
        description="starttls (submission), ssl (implicit TLS, smtps) or plain (trusted LAN relay)",
    )
    username: str | None = Field(None, description="Login user; unset: no AUTH")
    password: str | None = Field(None, description="Login password; write ${ENV_VAR}")
    sender: str = Field(description="From address, e.g. 'Estate Gateway <gw@example.com>'")
    timeout: Timeout = 20.0

    @model_validator(mode="after")
    def _auth_pair(self) -> SmtpChannelConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both 'username' and 'password', or neither")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "plain": 25}[self.security]


class MqttChannelConfig(_Strict):
    """Publish the notification JSON on the gateway's own broker connection (QoS 1)."""

    type: Literal["mqtt"] = Field(description="Channel family")
    name: Name
    topic: str = Field(
        "estate-gateway/{estate}/notify/{person}",
        description="Topic template; {estate} and {person} are filled (wildcard characters replaced by _)",
    )
    qos: Literal[0, 1, 2] = Field(1, description="MQTT QoS; 1 waits for the broker's PUBACK")
    retain: bool = Field(False, description="Retain the last notification per topic")
    timeout: Timeout = 10.0


class ConsoleChannelConfig(_Strict):
    """The operator console's live feed (in process)."""

    type: Literal["console"] = Field(description="Channel family")
    name: Name
    require_subscriber: bool = Field(
        True, description="With no console connected, report a failure so the next channel is tried"
    )


class ModbusRelayChannelConfig(_Strict):
    """An on-site output (siren, strobe, PA trigger) on a Modbus relay board of the estate: a step that
    reaches it pulses the relay through the device's commander, audited. It only sounds for incidents of
    its own estate, and one pulse serves every person of a step (it is a place, not a person)."""

    type: Literal["modbus_relay"] = Field(description="Channel family")
    name: Name
    estate: str = Field(description="Estate of the relay board (and of the incidents it sounds for)")
    device: str = Field(description="Device id of the relay board (a local_output profile with pulses)")
    command: str = Field("siren", description="Pulse of the board's profile: siren, strobe, pa ...")
    min_interval: float = Field(
        30.0, ge=0, le=3600,
        description="A pulse within this many seconds of the last one is not repeated (reported sent)",
    )  # fmt: skip


ChannelConfig = Annotated[
    WebhookChannelConfig
    | SmsHttpChannelConfig
    | DingTalkChannelConfig
    | WeComChannelConfig
    | FeishuChannelConfig
    | SmtpChannelConfig
    | MqttChannelConfig
    | ConsoleChannelConfig
    | ModbusRelayChannelConfig,
    Field(discriminator="type"),
]
