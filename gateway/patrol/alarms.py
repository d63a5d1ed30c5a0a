"""Patrol alarms as Transitions (like gateway/sinks/spool_alarm.py): on the checkpoint's device, keyed
`{estate}/{device}/{rule}/{route}.{checkpoint}`, with a message in Chinese and English that names the
route and the checkpoint. They go through IncidentService.apply, so they become incidents and escalate
like any other alarm."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.alerts import Transition
from gateway.config.patrol import RouteConfig
from gateway.model import Priority
from gateway.patrol.tour import Signal, Tour

__all__ = ["PRIORITIES", "RULES", "transition"]

PRIORITIES = {
    "patrol_late": Priority.MEDIUM,
    "patrol_out_of_order": Priority.MEDIUM,
    "patrol_missed": Priority.HIGH,
}
RULES = tuple(PRIORITIES)


def _hhmm(ts: float, timezone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(timezone)).strftime("%H:%M")


def _messages(signal: Signal, tour: Tour, route: RouteConfig, timezone: str) -> tuple[str, str]:
    cp = route.checkpoints[signal.index]
    n, rz, re_ = signal.index + 1, route.name.zh, route.name.en
    start = _hhmm(tour.due_at, timezone)
    if signal.rule == "patrol_late":
        by = _hhmm(tour.deadline(signal.index), timezone)
        if tour.status == "due" or (signal.index == 0 and tour.started_at is None):
            return (
                f"巡更未按时开始：{rz}（{start} 班次）第1点 {cp.name.zh} 应于 {by} 前打卡",
                f"Patrol not started: {re_} ({start} round), checkpoint 1 {cp.name.en} due by {by}",
            )
        return (
            f"巡更超时：{rz}（{start} 班次）第{n}点 {cp.name.zh} 应于 {by} 前打卡",
            f"Patrol late: {re_} ({start} round), checkpoint {n} {cp.name.en} due by {by}",
        )
    if signal.rule == "patrol_out_of_order":
        want = route.checkpoints[signal.other or 0]
        m = (signal.other or 0) + 1
        return (
            f"巡更顺序错误：{rz}（{start} 班次）先打卡第{n}点 {cp.name.zh}，应为第{m}点 {want.name.zh}",
            f"Patrol out of order: {re_} ({start} round) punched checkpoint {n} {cp.name.en} "
            f"before checkpoint {m} {want.name.en}",
        )
    if signal.whole:
        k = len(route.checkpoints)
        return (
            f"巡更漏巡：{rz}（{start} 班次）{k} 个巡更点均未打卡",
            f"Patrol missed: {re_} ({start} round), none of its {k} checkpoints punched",
        )
    return (
        f"巡更漏检：{rz}（{start} 班次）第{n}点 {cp.name.zh} 未打卡",
        f"Patrol checkpoint missed: {re_} ({start} round), checkpoint {n} {cp.name.en} not punched",
    )


def transition(signal: Signal, tour: Tour, route: RouteConfig, timezone: str, zone: str = "") -> Transition:
    cp = route.checkpoints[signal.index]
    zh, en = _messages(signal, tour, route, timezone)
    return Transition(
        f"{tour.estate}/{cp.device}/{signal.rule}/{route.id}.{cp.id}", tour.estate, cp.device, signal.rule,
        PRIORITIES[signal.rule], signal.active, signal.ts, cp.id, zh, en, zone=zone,
    )  # fmt: skip
