"""化粪池压力 / Septic pressure: tank pressure and level against the high / high-high limits, alarms.

Points are the pressure-transmitter profiles' (`pressure` kPa, derived `level_m`); the limits are the
default rules' (septic_high > 18 kPa, septic_high_high > 22 kPa, gateway/alerts/defaults.yaml).
"""

from __future__ import annotations

from dashboards.influxql import InfluxQL, matches, tag_variable
from dashboards.panels import Board, Steps, stat_panel, table_panel, trend

UID = "estate-septic"
WHERE = f"{matches('estate')} AND {matches('device')}"
HIGH_KPA, HIGH_HIGH_KPA = 18, 22
LIMITS: Steps = ((None, "green"), (HIGH_KPA, "orange"), (HIGH_HIGH_KPA, "red"))
HIGH_RULES = "/^septic_high/"  # septic_high and septic_high_high


def _series(point: str) -> InfluxQL:
    return InfluxQL(
        f"""SELECT mean("value") FROM "septic_pressure" WHERE {WHERE} AND "point" = '{point}'
            AND $timeFilter GROUP BY time($__interval), "device" fill(none)""",
        alias="$tag_device",
    )


def build() -> Board:
    board = Board(
        UID,
        "化粪池压力 / Septic pressure",
        "Septic tank and sewage pressure transmitters: pressure, liquid level and high-pressure alarms.",
        [
            tag_variable("estate", "小区 / Estate", "septic_pressure"),
            tag_variable("device", "化粪池 / Tank", "septic_pressure", where=matches("estate")),
        ],
    )
    board.row("压力与液位 / Pressure and level")
    board.add(
        stat_panel(
            "当前压力 / Pressure now",
            InfluxQL(
                f"""SELECT last("value") FROM "septic_pressure" WHERE {WHERE} AND "point" = 'pressure'
                    AND $timeFilter GROUP BY "device" """,
                alias="$tag_device",
            ),
            unit="pressurekpa",
            steps=LIMITS,
            width=8,
            height=8,
        ),
        trend(
            "压力 / Pressure",
            _series("pressure"),
            unit="pressurekpa",
            description=f"Dashed lines: high {HIGH_KPA} kPa, high-high {HIGH_HIGH_KPA} kPa",
            width=16,
            steps=LIMITS,
        ),
        trend("液位 / Liquid level", _series("level_m"), unit="lengthm", width=12),
        trend(
            "高压报警 / High-pressure alarms",
            InfluxQL(
                f"""SELECT sum("count") FROM "alarm" WHERE {WHERE} AND "rule" =~ {HIGH_RULES}
                    AND "state" = 'active' AND $timeFilter GROUP BY time($__interval), "rule" fill(0)""",
                alias="$tag_rule",
            ),
            width=12,
            stacked=True,
            as_bars=True,
        ),
        stat_panel(
            "高压报警次数 / High-pressure alarms in range",
            InfluxQL(
                f"""SELECT sum("count") FROM "alarm" WHERE {WHERE} AND "rule" =~ {HIGH_RULES}
                    AND "state" = 'active' AND $timeFilter GROUP BY "device" """,
                alias="$tag_device",
            ),
            steps=((None, "green"), (1, "orange")),
            decimals=0,
            width=8,
        ),
        table_panel(
            "报警记录 / Alarm transitions",
            InfluxQL(
                f"""SELECT "value", "device", "rule", "priority", "state" FROM "alarm"
                    WHERE {WHERE} AND "rule" =~ /^septic_/ AND $timeFilter ORDER BY time DESC LIMIT 100""",
                result_format="table",
            ),
            width=16,
        ),
    )
    return board
