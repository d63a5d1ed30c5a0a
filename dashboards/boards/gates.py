"""门禁与车辆 / Gates and vehicles: entries and exits, denials, unknown plates, forced and held doors.

Everything here is `device_event` (gateway/sinks/lines.py): plate verdicts `plate_resident`,
`plate_visitor`, `plate_unknown`, `plate_blacklisted` with tags `direction` (in/out/unknown),
`category` and `decision` (open/hold) and the plate as a string field; access-control events
`card_granted`, `card_denied`, `door_forced`, `door_held`.
"""

from __future__ import annotations

from dashboards.influxql import InfluxQL, matches, tag_variable
from dashboards.panels import Board, bars, stat_panel, table_panel, trend

UID = "estate-gates"
ESTATE = matches("estate")
PLATES = '"kind" =~ /^plate_(resident|visitor|unknown|blacklisted)$/'
DOORS = '"kind" =~ /^door_(forced|held)$/'


def _count(condition: str, alias: str) -> InfluxQL:
    return InfluxQL(
        f"""SELECT sum("count") FROM "device_event" WHERE {ESTATE} AND {condition} AND $timeFilter""",
        alias=alias,
    )


def _per_interval(condition: str, tag: str) -> InfluxQL:
    return InfluxQL(
        f"""SELECT sum("count") FROM "device_event" WHERE {ESTATE} AND {condition} AND $timeFilter
            GROUP BY time($__interval), "{tag}" fill(0)""",
        alias=f"$tag_{tag}",
    )


def build() -> Board:
    board = Board(
        UID,
        "门禁与车辆 / Gates and vehicles",
        "Vehicle entries and exits by plate verdict, barrier denials, unknown plates, card access and "
        "forced or held doors.",
        [tag_variable("estate", "小区 / Estate", "device_event")],
    )
    board.row("车辆 / Vehicles")
    board.add(
        stat_panel("入场 / Entries", _count(f"{PLATES} AND \"direction\" = 'in'", "entries"), decimals=0),
        stat_panel("出场 / Exits", _count(f"{PLATES} AND \"direction\" = 'out'", "exits"), decimals=0),
        stat_panel(
            "拒绝放行 / Denied at barrier",
            _count(f"{PLATES} AND \"decision\" = 'hold'", "denied"),
            description="Plate reads the barrier did not open for (blacklisted, unknown where not allowed)",
            steps=((None, "green"), (1, "orange")),
            decimals=0,
        ),
        stat_panel(
            "未登记车辆出场 / Unknown plates leaving",
            _count("\"kind\" = 'plate_unknown' AND \"direction\" = 'out'", "unknown exits"),
            steps=((None, "green"), (1, "orange")),
            decimals=0,
        ),
        trend(
            "车辆进出 / Entries and exits",
            _per_interval(f'{PLATES} AND "direction" =~ /^(in|out)$/', "direction"),
            as_bars=True,
        ),
        trend("按类别 / By plate category", _per_interval(PLATES, "category"), stacked=True, as_bars=True),
        table_panel(
            "未登记与黑名单车牌 / Unknown and blacklisted plates",
            InfluxQL(
                f"""SELECT "plate", "device", "kind", "direction", "decision" FROM "device_event"
                    WHERE {ESTATE} AND "kind" =~ /^plate_(unknown|blacklisted)$/ AND $timeFilter
                    ORDER BY time DESC LIMIT 100""",
                result_format="table",
            ),
        ),
    )
    board.row("门禁 / Doors and cards")
    board.add(
        stat_panel(
            "强行开门 / Doors forced",
            _count("\"kind\" = 'door_forced'", "forced"),
            steps=((None, "green"), (1, "red")),
            decimals=0,
        ),
        stat_panel(
            "门长时间未关 / Doors held open",
            _count("\"kind\" = 'door_held'", "held"),
            steps=((None, "green"), (1, "orange")),
            decimals=0,
        ),
        stat_panel(
            "刷卡拒绝 / Cards denied",
            _count("\"kind\" = 'card_denied'", "denied"),
            steps=((None, "green"), (5, "orange")),
            decimals=0,
        ),
        stat_panel("刷卡通过 / Cards granted", _count("\"kind\" = 'card_granted'", "granted"), decimals=0),
        trend(
            "刷卡 / Card access", _per_interval('"kind" =~ /^card_(granted|denied)$/', "kind"), as_bars=True
        ),
        bars(
            "强行开门与未关（按门） / Forced and held, by door",
            InfluxQL(
                f"""SELECT sum("count") FROM "device_event" WHERE {ESTATE} AND {DOORS} AND $timeFilter
                    GROUP BY "device", "kind" """,
                alias="$tag_device · $tag_kind",
            ),
            steps=((None, "green"), (1, "orange")),
        ),
    )
    return board
