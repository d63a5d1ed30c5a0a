"""小区设施考核 / Estate facilities: the monthly-assessment KPIs (DESIGN §7) against their targets.

Targets come from the KPI settings' defaults (gateway/config/kpi.py), so the gauges turn green where
the monthly report says "pass"; a site with other targets regenerates with its own.
"""

from __future__ import annotations

from dashboards.influxql import InfluxQL, matches, tag_variable
from dashboards.panels import Board, Steps, gauge_panel, stat_panel, trend
from gateway.config.kpi import KpiConfig
from gateway.model import Priority

UID = "estate-facilities"
ESTATE = matches("estate")
PERIOD = "\"period\" = '$period'"

# KPI name → (中文, English); percentages 0-100 (gateway/kpi/compute.py)
RATES = {
    "fire_intact_rate": ("消防设施完好率", "Fire-facility intact rate"),
    "equipment_intact_rate": ("设备完好率", "Equipment intact rate"),
    "septic_intact_rate": ("化粪池完好率", "Septic system intact rate"),
    "generator_readiness": ("应急发电可用率", "Generator readiness"),
    "on_time_response_rate": ("响应及时率", "On-time response rate"),
    "repair_timeliness_rate": ("维修及时率", "Repair timeliness rate"),
}
COUNTS = {
    "fire_alarms": ("火警次数", "Fire alarms"),
    "alarms": ("报警次数", "Alarms"),
    "incidents": ("事件数", "Incidents"),
    "generator_test_runs": ("发电机试机", "Generator test runs"),
}


def _target_steps(name: str, config: KpiConfig) -> Steps:
    """Red below the pass mark less 5 points, amber up to the pass mark, green at or above it."""
    target = config.targets.get(name)
    mark = target.min if target is not None and target.min is not None else 95.0
    return (
        ((None, "red"), (mark - 5, "orange"), (mark, "green"))
        if mark > 5
        else ((None, "red"), (mark, "green"))
    )


def _kpi(name: str, group_by_time: bool = False) -> InfluxQL:
    if group_by_time:
        return InfluxQL(
            f"""SELECT last("value") FROM "kpi" WHERE {ESTATE} AND "kpi" = '{name}' AND {PERIOD}
                AND $timeFilter GROUP BY time($__interval), "estate" fill(previous)""",
            alias="$tag_estate",
        )
    return InfluxQL(
        f"""SELECT last("value") FROM "kpi" WHERE {ESTATE} AND "kpi" = '{name}' AND {PERIOD}
            AND $timeFilter GROUP BY "estate" """,
        alias="$tag_estate",
    )


def build() -> Board:
    config = KpiConfig()
    board = Board(
        UID,
        "小区设施考核 / Estate facilities",
        "每月考核 KPIs per estate: intact rates, generator readiness, MTTA/MTTR and on-time response, "
        "coloured against the assessment targets.",
        [
            tag_variable("estate", "小区 / Estate", "kpi"),
            tag_variable("period", "周期 / Period", "kpi", multi=False),
        ],
        time_from="now-7d",
    )
    board.row("考核指标 / Assessment KPIs")
    for name, (zh, en) in RATES.items():
        target = config.targets.get(name)
        mark = f"目标 / target ≥ {target.min:g}%" if target is not None and target.min is not None else ""
        board.add(
            gauge_panel(
                f"{zh} / {en}",
                _kpi(name),
                _target_steps(name, config),
                description=f"{en} ({name}), period $period. {mark}".strip(),
                width=8,
            )
        )
    ack_high = config.ack_sla_s[Priority.HIGH]
    board.add(
        stat_panel(
            "平均响应时间 / MTTA",
            _kpi("mtta_s"),
            unit="s",
            description="Mean time to acknowledge, all priorities",
            steps=((None, "green"), (ack_high, "orange"), (config.ack_sla_s[Priority.MEDIUM], "red")),
            width=6,
        ),
        stat_panel(
            "平均修复时间 / MTTR",
            _kpi("mttr_s"),
            unit="s",
            description="Mean time to resolve, all priorities",
            steps=((None, "green"), (config.repair_sla_s[Priority.CRITICAL], "orange")),
            width=6,
        ),
        trend(
            "响应与修复时间（按优先级） / MTTA and MTTR by priority",
            InfluxQL(
                f"""SELECT last("value") FROM "kpi" WHERE {ESTATE} AND "kpi" =~ /^mtt[ar]_s_[a-z]+$/
                    AND {PERIOD} AND $timeFilter
                    GROUP BY time($__interval), "estate", "kpi" fill(previous)""",
                alias="$tag_estate · $tag_kpi",
            ),
            unit="s",
            width=12,
        ),
    )
    board.row("趋势与计数 / Trends and counts")
    rate_names = "|".join(RATES)
    board.add(
        trend(
            "完好率趋势 / Intact rates over time",
            InfluxQL(
                f"""SELECT last("value") FROM "kpi" WHERE {ESTATE} AND "kpi" =~ /^({rate_names})$/
                    AND {PERIOD} AND $timeFilter
                    GROUP BY time($__interval), "estate", "kpi" fill(previous)""",
                alias="$tag_estate · $tag_kpi",
            ),
            unit="percent",
            width=24,
            max_value=100,
        )
    )
    for name, (zh, en) in COUNTS.items():
        board.add(stat_panel(f"{zh} / {en}", _kpi(name), description=f"{name}, period $period", decimals=0))
    board.add(
        trend(
            "消防报警 / Fire-panel alarms",
            InfluxQL(
                f"""SELECT sum("count") FROM "alarm" WHERE {ESTATE} AND "rule" =~ /^fire_/
                    AND "state" = 'active' AND $timeFilter GROUP BY time($__interval), "rule" fill(0)""",
                alias="$tag_rule",
            ),
            description="Fire, pre-alarm, fault and disabled activations of fire points and panels",
            width=24,
            stacked=True,
            as_bars=True,
        )
    )
    return board
