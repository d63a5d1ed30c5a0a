"""KPI names in Chinese and English, with their units, in the order the assessment lists them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    zh: str
    en: str
    unit: str = ""  # "%", "s", "" for counts

    def text(self, lang: str) -> str:
        return self.zh if lang == "zh-CN" else self.en


SECTIONS: list[tuple[Label, list[str]]] = [
    (Label("设施完好", "Facility integrity"), [
        "equipment_intact_rate", "fire_intact_rate", "septic_intact_rate", "generator_readiness",
        "generator_test_runs",
    ]),
    (Label("火警", "Fire alarms"), ["fire_alarms", "fire_alarms_per_1000_points", "fire_false_alarm_share"]),
    (Label("响应与维修", "Response and repair"), [
        "on_time_response_rate", "repair_timeliness_rate", "mtta_s", "mtta_s_p90", "mttr_s", "mttr_s_p90",
        "incidents",
    ]),
    (Label("报警负荷（ISA-18.2）", "Alarm load (ISA-18.2)"), [
        "alarms", "alarms_per_10min_peak", "flood_time_share", "chattering_alarms",
    ]),
    (Label("车辆与门禁", "Vehicles and gates"), [
        "vehicle_entries", "vehicle_exits", "plates_denied", "unknown_plate_exits", "doors_forced",
        "doors_held", "after_hours_entries", "cards_denied",
    ]),
    (Label("安全巡逻", "Guard tours"), ["patrol_completion_rate", "patrol_on_time_rate", "patrol_tours"]),
]  # fmt: skip

KPI_LABELS: dict[str, Label] = {
    "equipment_intact_rate": Label("设备完好率", "Equipment intact rate", "%"),
    "fire_intact_rate": Label("消防设施完好率", "Fire-facility intact rate", "%"),
    "septic_intact_rate": Label("化粪池/排污完好率", "Septic system intact rate", "%"),
    "generator_readiness": Label("应急发电可用率", "Generator readiness", "%"),
    "generator_test_runs": Label("发电机试运行次数", "Generator test runs"),
    "fire_alarms": Label("火警次数", "Fire alarms"),
    "fire_alarms_per_1000_points": Label("每千点火警数", "Fire alarms per 1,000 points"),
    "fire_false_alarm_share": Label("误报占比", "False-alarm share", "%"),
    "on_time_response_rate": Label("响应及时率", "On-time response rate", "%"),
    "repair_timeliness_rate": Label("维修及时率", "Repair timeliness rate", "%"),
    "mtta_s": Label("平均确认时间 MTTA", "Mean time to acknowledge (MTTA)", "s"),
    "mtta_s_p90": Label("确认时间 P90", "Time to acknowledge, p90", "s"),
    "mttr_s": Label("平均处置时间 MTTR", "Mean time to resolve (MTTR)", "s"),
    "mttr_s_p90": Label("处置时间 P90", "Time to resolve, p90", "s"),
    "incidents": Label("事件数", "Incidents"),
    "alarms": Label("报警次数", "Alarms"),
    "alarms_per_10min_peak": Label("10 分钟报警峰值", "Peak alarms per 10 min"),
    "flood_time_share": Label("报警泛滥时间占比", "Time in alarm flood", "%"),
    "chattering_alarms": Label("振荡报警", "Chattering alarms"),
    "vehicle_entries": Label("车辆入场", "Vehicle entries"),
    "vehicle_exits": Label("车辆出场", "Vehicle exits"),
    "plates_denied": Label("拒绝放行", "Plates denied"),
    "unknown_plate_exits": Label("未登记车辆出场", "Unknown-plate exits"),
    "doors_forced": Label("门被强行打开", "Doors forced"),
    "doors_held": Label("门长时间未关", "Doors held open"),
    "after_hours_entries": Label("非开放时间进入", "After-hours entries"),
    "cards_denied": Label("刷卡被拒", "Cards denied"),
    "patrol_completion_rate": Label("巡更完成率", "Patrol completion rate", "%"),
    "patrol_on_time_rate": Label("巡更准时率", "Patrol punctuality", "%"),
    "patrol_tours": Label("应巡次数", "Patrol tours due"),
}

PRIORITY_LABELS = {
    "critical": Label("紧急", "Critical"),
    "high": Label("高", "High"),
    "medium": Label("中", "Medium"),
    "low": Label("低", "Low"),
}

TEXT: dict[str, Label] = {
    "title": Label("每月考核报告", "Monthly assessment report"),
    "estate": Label("小区", "Estate"),
    "month": Label("考核月份", "Month"),
    "generated": Label("生成时间", "Generated"),
    "timezone": Label("时区", "Time zone"),
    "period": Label("统计区间", "Period"),
    "summary": Label("考核结果", "Result"),
    "passed": Label("达标", "Pass"),
    "failed": Label("未达标", "Fail"),
    "no_target": Label("—", "—"),
    "no_data": Label("无数据", "no data"),
    "kpi": Label("指标", "KPI"),
    "value": Label("本月值", "This month"),
    "target": Label("目标", "Target"),
    "result": Label("结果", "Result"),
    "daily": Label("每日完好率", "Daily intact rates"),
    "by_priority": Label("按优先级的事件与响应", "Incidents and response by priority"),
    "priority": Label("优先级", "Priority"),
    "count": Label("次数", "Count"),
    "mean": Label("平均", "Mean"),
    "top": Label("高频报警 TOP 10", "Top 10 frequent alarms"),
    "rank": Label("排名", "Rank"),
    "alarm": Label("报警", "Alarm"),
    "source": Label("设备 / 规则", "Device / rule"),
    "passes": Label("达标项", "Targets met"),
    "signatures": Label("签字确认", "Sign-off"),
    "prepared": Label("制表人", "Prepared by"),
    "manager": Label("项目经理", "Estate manager"),
    "assessor": Label("考核人", "Assessor"),
    "date": Label("日期：", "Date:"),
    "day": Label("日期", "Day"),
    "notes": Label(
        "说明：完好率按时间加权（设备在线且无故障报警的时间占比）；时段按小区所在时区划分；"
        "响应及时率以各优先级的确认时限计算；维修及时率仅统计故障类事件。",
        "Notes: intact rates are time-weighted (share of time devices were online and free of fault alarms); "
        "days follow the estate's time zone; on-time response uses each priority's acknowledgement SLA; "
        "repair timeliness counts fault incidents only.",
    ),
}


def unit_text(unit: str, lang: str) -> str:
    if unit == "s":
        return "秒" if lang == "zh-CN" else "s"
    return unit
