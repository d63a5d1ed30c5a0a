"""应急发电机 / Generators: mode, engine state, mains, load, fuel, starter battery and run hours.

Point names are the generator profiles' (drivers/profiles/dse_gencomm.yaml, comap_intelilite4.yaml):
`control_mode` and `engine_state` are text (field `text`), the rest numbers (field `value`).
Limits follow the default rules (gateway/alerts/defaults.yaml: gen_fuel_low 20 %, gen_fuel_critical
10 %, gen_battery_low 22 V).
"""

from __future__ import annotations

from dashboards.influxql import InfluxQL, matches, tag_variable
from dashboards.panels import Board, gauge_panel, stat_panel, table_panel, text_mapping, trend

UID = "estate-generator"
WHERE = f"{matches('estate')} AND {matches('device')}"

MODES = {
    "auto": ("自动 / Auto", "green"),
    "auto_manual_restore": ("自动（手动恢复） / Auto, manual restore", "green"),
    "test_on_load": ("带载试机 / Test on load", "blue"),
    "test_off_load": ("空载试机 / Test off load", "blue"),
    "manual": ("手动 / Manual", "orange"),
    "stop": ("停止 / Stop", "red"),
    "off": ("关闭 / Off", "red"),
    "user": ("用户 / User", "orange"),
}
ENGINE = {
    "running": ("运行 / Running", "green"),
    "stopped": ("停机 / Stopped", "blue"),
    "pre_start": ("预启动 / Pre-start", "yellow"),
    "warming": ("暖机 / Warming", "yellow"),
    "cooling": ("冷却 / Cooling", "yellow"),
    "post_run": ("停机后 / Post-run", "blue"),
}
MAINS = {"0": ("正常 / OK", "green"), "1": ("失电 / Failed", "red")}


def _last(point: str, field: str = "value", scale: str = "") -> InfluxQL:
    return InfluxQL(
        f"""SELECT last("{field}"){scale} FROM "generator" WHERE {WHERE} AND "point" = '{point}'
            AND $timeFilter GROUP BY "device" """,
        alias="$tag_device",
    )


def _series(point: str, scale: str = "") -> InfluxQL:
    return InfluxQL(
        f"""SELECT mean("value"){scale} FROM "generator" WHERE {WHERE} AND "point" = '{point}'
            AND $timeFilter GROUP BY time($__interval), "device" fill(none)""",
        alias="$tag_device",
    )


def build() -> Board:
    board = Board(
        UID,
        "应急发电机 / Generators",
        "Standby generators: ready in auto, mains state, load, fuel, starter battery and run hours.",
        [
            tag_variable("estate", "小区 / Estate", "generator"),
            tag_variable("device", "发电机 / Generator", "generator", where=matches("estate")),
        ],
    )
    board.row("状态 / Status")
    board.add(
        stat_panel(
            "运行模式 / Control mode",
            _last("control_mode", "text"),
            description="Auto means the set starts by itself on mains failure (应急发电可用)",
            mappings=text_mapping(MODES),
            text=True,
        ),
        stat_panel(
            "发动机 / Engine", _last("engine_state", "text"), mappings=text_mapping(ENGINE), text=True
        ),
        stat_panel(
            "市电 / Mains",
            _last("mains_failed"),
            description="Derived: mains voltage below 80 % of nominal",
            mappings=text_mapping(MAINS),
        ),
        stat_panel(
            "累计运行 / Run hours",
            _last("run_time", scale=" / 3600"),
            unit="h",
            description="Engine run time from the controller",
            decimals=1,
        ),
    )
    board.row("负载与燃油 / Load and fuel")
    board.add(
        trend("负载 / Load", _series("total_power", " / 1000"), unit="kwatt", width=12),
        gauge_panel(
            "燃油 / Fuel level",
            _last("fuel_level"),
            ((None, "red"), (10, "orange"), (20, "green")),
            width=12,
            height=8,
        ),
        trend(
            "燃油趋势 / Fuel over time",
            _series("fuel_level"),
            unit="percent",
            steps=((None, "red"), (10, "orange"), (20, "green")),
            min_value=0,
            max_value=100,
        ),
        trend(
            "启动电池 / Starter battery",
            _series("battery_voltage"),
            unit="volt",
            steps=((None, "red"), (22, "green")),
        ),
        trend("市电电压 / Mains voltage", _series("mains_voltage"), unit="volt"),
        trend("转速 / Engine speed", _series("engine_speed"), unit="rpm"),
    )
    board.row("发电机报警 / Generator alarms")
    board.add(
        table_panel(
            "报警记录 / Alarm transitions",
            InfluxQL(
                f"""SELECT "active", "device", "rule", "priority", "state" FROM "alarm"
                    WHERE {WHERE} AND "rule" =~ /^gen_/ AND $timeFilter ORDER BY time DESC LIMIT 100""",
                result_format="table",
            ),
        )
    )
    return board
