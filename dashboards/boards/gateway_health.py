"""网关运行状况 / Gateway health: ingest queue, throughput, store failures, the InfluxDB sink's lag and
spool, devices online and offline — from the `gateway` health snapshots (gateway/sinks/lines.py).

Counters in the snapshot (items_processed, store_failures, points_written...) only grow while the
gateway runs, so rates are `non_negative_derivative` / `non_negative_difference`: a restart resets a
counter to 0, and the negative step it makes is dropped rather than drawn as a dip.
"""

from __future__ import annotations

from dashboards.influxql import InfluxQL, matches, tag_variable
from dashboards.panels import Board, stat_panel, trend

UID = "estate-gateway-health"
GATEWAY = matches("gateway_id")


def _gauge(field: str, aggregate: str = "max") -> InfluxQL:
    return InfluxQL(
        f"""SELECT {aggregate}("{field}") FROM "gateway" WHERE {GATEWAY} AND $timeFilter
            GROUP BY time($__interval), "gateway_id" fill(none)""",
        alias="$tag_gateway_id",
    )


def _now(field: str) -> InfluxQL:
    return InfluxQL(
        f"""SELECT last("{field}") FROM "gateway" WHERE {GATEWAY} AND $timeFilter GROUP BY "gateway_id" """,
        alias="$tag_gateway_id",
    )


def _increase(*fields: str) -> InfluxQL:
    selects = ", ".join(f'non_negative_difference(max("{f}")) AS "{f}"' for f in fields)
    return InfluxQL(
        f"""SELECT {selects} FROM "gateway" WHERE {GATEWAY} AND $timeFilter
            GROUP BY time($__interval), "gateway_id" fill(none)""",
        alias="$tag_gateway_id $col",
    )


def _gauges(*fields: str) -> InfluxQL:
    """Several gauges in one panel, each series named by gateway and field."""
    selects = ", ".join(f'last("{f}") AS "{f}"' for f in fields)
    return InfluxQL(
        f"""SELECT {selects} FROM "gateway" WHERE {GATEWAY} AND $timeFilter
            GROUP BY time($__interval), "gateway_id" fill(previous)""",
        alias="$tag_gateway_id $col",
    )


def build() -> Board:
    board = Board(
        UID,
        "网关运行状况 / Gateway health",
        "The gateway's own health: ingest queue, items processed, store failures, sink lag and spool, "
        "devices online and offline.",
        [tag_variable("gateway_id", "网关 / Gateway", "gateway")],
        time_from="now-6h",
    )
    board.row("现在 / Now")
    board.add(
        stat_panel(
            "队列深度 / Queue depth", _now("queue_depth"), steps=((None, "green"), (1000, "orange")), width=4
        ),
        stat_panel(
            "在线设备 / Devices online", _now("devices_online"), steps=((None, "green"),), decimals=0, width=4
        ),
        stat_panel(
            "离线设备 / Devices offline",
            _now("devices_offline"),
            steps=((None, "green"), (1, "red")),
            decimals=0,
            width=4,
        ),
        stat_panel(
            "写入延迟 / Sink lag",
            _now("lag_s"),
            unit="s",
            description="Age of the oldest point not yet in InfluxDB",
            steps=((None, "green"), (60, "orange"), (600, "red")),
            width=4,
        ),
        stat_panel(
            "缓存点数 / Spooled points",
            _now("spool_points"),
            description="Points waiting on disk while InfluxDB is unreachable",
            steps=((None, "green"), (1, "orange")),
            decimals=0,
            width=4,
        ),
        stat_panel(
            "存储失败 / Store failures",
            _now("store_failures"),
            steps=((None, "green"), (1, "red")),
            decimals=0,
            width=4,
        ),
    )
    board.row("处理 / Processing")
    board.add(
        trend("队列深度 / Ingest queue depth", _gauge("queue_depth")),
        trend(
            "处理速率 / Items processed",
            InfluxQL(
                f"""SELECT non_negative_derivative(max("items_processed"), 1s) FROM "gateway"
                    WHERE {GATEWAY} AND $timeFilter GROUP BY time($__interval), "gateway_id" fill(none)""",
                alias="$tag_gateway_id",
            ),
            unit="ops",
            description="Readings and events through the alert core per second",
        ),
        trend(
            "失败 / Failures",
            _increase("store_failures", "core_errors", "write_errors"),
            description="New store failures, alert-core errors and InfluxDB write errors per interval",
            as_bars=True,
        ),
        trend("设备在线 / Devices online and offline", _gauges("devices_online", "devices_offline")),
    )
    board.row("写入 InfluxDB / Metrics sink")
    board.add(
        trend("写入延迟 / Sink lag", _gauge("lag_s"), unit="s", steps=((None, "green"), (60, "orange"))),
        trend("缓存 / Spool size", _gauge("spool_points"), unit="short"),
        trend(
            "写入点数 / Points written and dropped",
            _increase("points_written", "points_dropped"),
            as_bars=True,
            width=24,
        ),
    )
    return board
