"""Message text for notifications: zh-CN first, then English, in the estate's timezone.

    Notification ─▶ sms_text      plain, short (≤ ~200 chars), zh first; English only if it fits
                 ─▶ markdown      (title, body) for DingTalk / WeCom / Feishu robots
                 ─▶ email_subject / email_body   plain text (no HTML), UTF-8

`step` is the engine's 0-based escalation step: step 0 is the first notification (第1级), step n is
the n-th escalation (第{n+1}级升级), matching the engine's `level = step + 1`.
A grouped (flood) notification carries several incident ids; its text gives the count and the first
FLOOD_LISTED titles of `member_titles`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.escalation.types import Notification
from gateway.model import Priority

__all__ = [
    "FLOOD_LISTED",
    "PRIORITY_EN",
    "PRIORITY_ZH",
    "SMS_MAX_CHARS",
    "email_body",
    "email_subject",
    "level_en",
    "level_zh",
    "local_time",
    "markdown",
    "plain_text",
    "sms_text",
]

PRIORITY_ZH = {Priority.CRITICAL: "紧急", Priority.HIGH: "高", Priority.MEDIUM: "中", Priority.LOW: "低"}
PRIORITY_EN = {
    Priority.CRITICAL: "Critical",
    Priority.HIGH: "High",
    Priority.MEDIUM: "Medium",
    Priority.LOW: "Low",
}
_ICON = {Priority.CRITICAL: "🔴", Priority.HIGH: "🟠", Priority.MEDIUM: "🟡", Priority.LOW: "🔵"}
FLOOD_LISTED = 5  # titles listed in a grouped (flood) message
SMS_MAX_CHARS = 200  # a long SMS is 3 concatenated parts of 67 UCS-2 chars; beyond it gateways split or cut


def local_time(notification: Notification, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """When the incident opened, in the estate's timezone (UTC if the zone is unknown here)."""
    try:
        zone: ZoneInfo | None = ZoneInfo(notification.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    moment = datetime.fromtimestamp(notification.opened_at, zone or UTC)
    return moment.strftime(fmt) + ("" if zone else " UTC")


def level_zh(step: int) -> str:
    return "第1级（首次通知）" if step <= 0 else f"第{step + 1}级升级"


def level_en(step: int) -> str:
    return "level 1 (first notice)" if step <= 0 else f"escalation level {step + 1}"


def _ids(notification: Notification) -> str:
    shown = notification.incident_ids[:FLOOD_LISTED]
    more = len(notification.incident_ids) - len(shown)
    return ", ".join(f"#{i}" for i in shown) + (f" (+{more})" if more > 0 else "")


def _grouped(notification: Notification) -> bool:
    return len(notification.incident_ids) > 1


def _member_lines(notification: Notification, lang: int) -> list[str]:
    """The first FLOOD_LISTED titles of a grouped notification in one language (0: zh, 1: en)."""
    titles = [pair[lang] for pair in notification.member_titles[:FLOOD_LISTED]]
    rest = len(notification.incident_ids) - len(titles)
    lines = [f"{n}. {title}" for n, title in enumerate(titles, 1)]
    if titles and rest > 0:
        lines.append(f"… 另有 {rest} 起" if lang == 0 else f"… and {rest} more")
    return lines


def _facts_zh(n: Notification) -> list[tuple[str, str]]:
    facts = [
        ("小区", n.estate_name_zh),
        ("优先级", PRIORITY_ZH[n.priority]),
        ("设备", n.device),
        ("位置", n.location or "-"),
        ("时间", f"{local_time(n)}（{n.timezone}）"),
        ("事件", _ids(n)),
        ("级别", level_zh(n.step)),
    ]
    if _grouped(n):
        facts.insert(0, ("告警洪流", f"共 {len(n.incident_ids)} 起事件"))
    return facts


def _facts_en(n: Notification) -> list[tuple[str, str]]:
    facts = [
        ("Estate", n.estate_name_en),
        ("Priority", PRIORITY_EN[n.priority]),
        ("Device", n.device),
        ("Location", n.location or "-"),
        ("Time", f"{local_time(n)} ({n.timezone})"),
        ("Incident", _ids(n)),
        ("Level", level_en(n.step)),
    ]
    if _grouped(n):
        facts.insert(0, ("Alarm flood", f"{len(n.incident_ids)} incidents"))
    return facts


def plain_text(n: Notification) -> str:
    """The full message as plain text, zh block then en block (e-mail body, console, webhook `text`)."""
    zh = [f"【{PRIORITY_ZH[n.priority]}】{n.title_zh}", *(f"{k}：{v}" for k, v in _facts_zh(n))]
    zh += _member_lines(n, 0)
    en = [f"[{PRIORITY_EN[n.priority]}] {n.title_en}", *(f"{k}: {v}" for k, v in _facts_en(n))]
    en += _member_lines(n, 1)
    if n.ack_url:
        zh.append(f"确认：{n.ack_url}")
        en.append(f"Acknowledge: {n.ack_url}")
    return "\n".join(zh) + "\n\n" + "\n".join(en) + "\n"


def email_subject(n: Notification) -> str:
    """One line, zh then en; the SMTP channel encodes it as UTF-8 (RFC 2047)."""
    count = f"（{len(n.incident_ids)}起）" if _grouped(n) else ""
    count_en = f" ({len(n.incident_ids)} incidents)" if _grouped(n) else ""
    return (
        f"【{PRIORITY_ZH[n.priority]}】{n.estate_name_zh} {n.title_zh}{count} / "
        f"[{PRIORITY_EN[n.priority]}] {n.estate_name_en}: {n.title_en}{count_en}"
    )


def email_body(n: Notification) -> str:
    return plain_text(n) + "\n-- \nestate-gateway\n"


def markdown(n: Notification, mention: str = "", heading: bool = True) -> tuple[str, str]:
    """(title, body) in the Markdown the group robots render; `mention` (e.g. "@138...") goes on top.
    heading=False leaves the title out of the body (Feishu shows it in the card header)."""
    icon = _ICON[n.priority]
    title = f"{icon}【{PRIORITY_ZH[n.priority]}】{n.estate_name_zh} {n.title_zh}"
    lines = [f"### {icon}【{PRIORITY_ZH[n.priority]}】{n.title_zh}"] if heading else []
    if mention:
        lines.append(mention)
    lines += [f"- **{k}**：{v}" for k, v in _facts_zh(n)]
    lines += ["", *_member_lines(n, 0)] if n.member_titles else []  # a list of its own, not more bullets
    lines += ["", f"**[{PRIORITY_EN[n.priority]}] {n.title_en}**"]
    lines += [f"- **{k}**: {v}" for k, v in _facts_en(n)]
    lines += ["", *_member_lines(n, 1)] if n.member_titles else []
    if n.ack_url:
        lines += ["", f"[确认 / Acknowledge]({n.ack_url})"]
    return title, "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def sms_text(n: Notification, limit: int = SMS_MAX_CHARS) -> str:
    """Short plain text: zh first, English appended only if it still fits; the ack link is never cut."""
    flood = f"{len(n.incident_ids)}起事件:" if _grouped(n) else ""
    zh = (
        f"【{n.estate_name_zh}】{PRIORITY_ZH[n.priority]} {flood}{n.title_zh} {n.location or n.device} "
        f"{local_time(n, '%m-%d %H:%M')} {_ids(n)} {level_zh(n.step)}"
    )
    flood_en = f"{len(n.incident_ids)} incidents: " if _grouped(n) else ""
    en = f"[{PRIORITY_EN[n.priority]}] {flood_en}{n.title_en}"
    link = f" 确认 {n.ack_url}" if n.ack_url else ""
    room = limit - len(link)
    text = f"{zh} / {en}" if len(zh) + 3 + len(en) <= room else _cut(zh, room)
    return text + link
