"""控制室总览 / Control room overview: what is open now, how loaded the operators are, floods."""

from __future__ import annotations

from dashboards.influxql import InfluxQL, matches, tag_variable
from dashboards.panels import Board, bars, stat_panel, table_panel, trend

UID = "estate-control-room"
FLOOD_PER_10_MIN = 10  # ISA-18.2: more than 10 new alarms per operator in 10 minutes is a flood
FLOOD_RULE = "alarm_flood"  # gateway.incidents.manager.FLOOD_RULE
FLOOD_STARTED = "flood_started"  # the first timeline entry of a flood incident (not "opened")

_PRIORITIES = (
    ("critical", "紧急", "Critical", "red"),
    ("high", "高", "High", "orange"),
    ("medium", "中", "Medium", "yellow"),
    ("low", "低", "Low", "blue"),
)
ESTATE = matches("estate")


def _open_now(priority: str) -> InfluxQL:
    return InfluxQL(
        f"""SELECT last("count") FROM "incidents_open"
            WHERE {ESTATE} AND "priority" = '{priority}' AND $timeFilter GROUP BY "estate" """,
        alias="$tag_estate",
    )


def build() -> Board:
    board = Board(
        UID,
        "控制室总览 / Control room overview",
        "Open incidents by priority and estate, alarm load per 10 minutes (ISA-18.2) and alarm floods.",
        [tag_variable("estate", "小区 / Estate", "incidents_open")],
        time_from="now-12h",
    )
    board.row("未处理事件 / Open incidents")
    for priority, zh, en, colour in _PRIORITIES:
        board.add(
            stat_panel(
                f"{zh}未处理 / {en} open",
                _open_now(priority),
                description=f"Unresolved {priority} incidents (open or acknowledged), latest snapshot",
                steps=((None, "green"), (1, colour)),
                decimals=0,
            )
        )
    board.add(
        bars(
            "按小区与优先级 / By estate and priority",
            InfluxQL(
                f"""SELECT last("count") FROM "incidents_open" WHERE {ESTATE} AND $timeFilter
                    GROUP BY "estate", "priority" """,
                alias="$tag_estate · $tag_priority",
            ),
            steps=((None, "green"), (1, "orange")),
        ),
        trend(
            "未处理事件趋势 / Open incidents over time",
            InfluxQL(
                f"""SELECT last("count") FROM "incidents_open" WHERE {ESTATE} AND $timeFilter
                    GROUP BY time($__interval), "estate", "priority" fill(previous)""",
                alias="$tag_estate · $tag_priority",
            ),
            stacked=True,
        ),
    )
    board.row("报警负荷 / Alarm load")
    board.add(
        trend(
            "报警率（每 10 分钟） / Alarm rate (per 10 min)",
            InfluxQL(
                f"""SELECT sum("count") FROM "alarm" WHERE {ESTATE} AND "state" = 'active' AND $timeFilter
                    GROUP BY time(10m), "priority" fill(0)""",
                alias="$tag_priority",
            ),
            description="New alarm activations per 10 minutes; the dashed line is the ISA-18.2 flood level",
            width=12,
            stacked=True,
            as_bars=True,
            steps=((None, "green"), (FLOOD_PER_10_MIN, "red")),
        ),
        stat_panel(
            "报警洪流 / Alarm flood",
            InfluxQL(
                f"""SELECT sum("count") FROM "alarm" WHERE {ESTATE} AND "state" = 'active' AND $timeFilter
                    GROUP BY time(10m) fill(0)""",
                alias="alarms / 10 min",
            ),
            description=f"Alarms in the latest 10 minutes; red above {FLOOD_PER_10_MIN} (flood)",
            steps=((None, "green"), (FLOOD_PER_10_MIN * 0.7, "orange"), (FLOOD_PER_10_MIN + 1, "red")),
            decimals=0,
            height=8,
        ),
        stat_panel(
            "洪流事件 / Flood incidents",
            InfluxQL(
                f"""SELECT sum("count") FROM "incident" WHERE {ESTATE} AND "rule" = '{FLOOD_RULE}'
                    AND "event" = '{FLOOD_STARTED}' AND $timeFilter""",
                alias="flood incidents",
            ),
            description="Incidents that grouped an alarm flood, opened in the time range",
            steps=((None, "green"), (1, "red")),
            decimals=0,
            height=8,
        ),
        trend(
            "新事件 / New incidents by priority",
            InfluxQL(
                f"""SELECT sum("count") FROM "incident" WHERE {ESTATE}
                    AND "event" =~ /^(opened|{FLOOD_STARTED})$/ AND $timeFilter
                    GROUP BY time($__interval), "priority" fill(0)""",
                alias="$tag_priority",
            ),
            width=24,
            stacked=True,
            as_bars=True,
        ),
    )
    board.row("最近事件 / Recent incidents")
    board.add(
        table_panel(
            "事件动态 / Incident activity",
            InfluxQL(
                f"""SELECT "id", "estate", "priority", "event", "rule" FROM "incident"
                    WHERE {ESTATE} AND $timeFilter ORDER BY time DESC LIMIT 100""",
                result_format="table",
            ),
            description="Every incident timeline entry (opened, acknowledged, resolved...), newest first",
            height=10,
        )
    )
    return board
