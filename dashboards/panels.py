"""The few panel shapes the estate dashboards use, and `Board`, which numbers and lays them out.

Panels get ids in the order they are added (rows included), so ids are unique and stable from one
generation to the next; the SDK's builder places them left to right, 24 columns wide.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import bargauge, gauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.influxql import DATASOURCE, InfluxQL

__all__ = [
    "NEUTRAL",
    "Board",
    "Steps",
    "bars",
    "gauge_panel",
    "stat_panel",
    "table_panel",
    "text_mapping",
    "trend",
]

Steps = Sequence[tuple[float | None, str]]  # (from value, colour); the first step starts at -inf (None)
_PanelBuilder = stat.Panel | timeseries.Panel | gauge.Panel | bargauge.Panel | table.Panel

NEUTRAL: Steps = ((None, "blue"),)


def _thresholds(steps: Steps) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def text_mapping(colours: dict[str, tuple[str, str]]) -> list[model.ValueMapping]:
    """Text values shown with a label and a colour: {"auto": ("自动 / Auto", "green")}."""
    options = {
        value: model.ValueMappingResult(text=text, color=colour, index=i)
        for i, (value, (text, colour)) in enumerate(colours.items())
    }
    return [model.ValueMap(options=options)]


def _last(text: bool = False) -> common_builders.ReduceDataOptions:
    """The latest value of each series; `text` also shows string fields (the default is numbers only)."""
    options = common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
    return options.fields("/.*/") if text else options


def trend(
    title: str,
    *targets: InfluxQL,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    as_bars: bool = False,
    steps: Steps | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
) -> timeseries.Panel:
    """A time series. `steps` draws the thresholds as dashed lines (targets, alarm limits)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(40 if as_bars or stacked else 10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if description:
        panel.description(description)
    if as_bars:
        panel.draw_style(common.GraphDrawStyle.BARS)
    if stacked:
        panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if steps is not None:
        panel.thresholds(_thresholds(steps)).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    if min_value is not None:
        panel.min(min_value)
    if max_value is not None:
        panel.max(max_value)
    return panel


def stat_panel(
    title: str,
    *targets: InfluxQL,
    unit: str = "short",
    description: str = "",
    width: int = 6,
    height: int = 4,
    steps: Steps | None = None,
    mappings: list[model.ValueMapping] | None = None,
    decimals: int | None = None,
    text: bool = False,
) -> stat.Panel:
    """The latest value, coloured by `steps` (or by a text mapping); `text` for string fields."""
    panel = (
        stat.Panel()
        .title(title)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .reduce_options(_last(text))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(_thresholds(steps or NEUTRAL))
    )
    if description:
        panel.description(description)
    if mappings:
        panel.mappings(mappings)
    if decimals is not None:
        panel.decimals(decimals)
    return panel


def gauge_panel(
    title: str,
    target: InfluxQL,
    steps: Steps,
    unit: str = "percent",
    description: str = "",
    width: int = 6,
    height: int = 6,
    min_value: float = 0,
    max_value: float = 100,
) -> gauge.Panel:
    panel = (
        gauge.Panel()
        .title(title)
        .with_target(target)
        .unit(unit)
        .span(width)
        .height(height)
        .min(min_value)
        .max(max_value)
        .reduce_options(_last())
        .show_threshold_markers(True)
        .thresholds(_thresholds(steps))
    )
    if description:
        panel.description(description)
    return panel


def bars(
    title: str,
    *targets: InfluxQL,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    steps: Steps | None = None,
) -> bargauge.Panel:
    """One horizontal bar per series (per estate, per priority...), latest value."""
    panel = (
        bargauge.Panel()
        .title(title)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .reduce_options(_last())
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .thresholds(_thresholds(steps or NEUTRAL))
    )
    if description:
        panel.description(description)
    return panel


def table_panel(
    title: str, target: InfluxQL, description: str = "", width: int = 24, height: int = 8
) -> table.Panel:
    panel = table.Panel().title(title).with_target(target).span(width).height(height)
    if description:
        panel.description(description)
    return panel


class Board:
    """One dashboard: numbered panels, bilingual title, the estate tags, refreshed every 30 s."""

    def __init__(
        self,
        uid: str,
        title: str,
        description: str,
        variables: Sequence[dash.QueryVariable] = (),
        time_from: str = "now-24h",
    ) -> None:
        self.uid = uid
        self._next_id = 1
        self.builder = (
            dash.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["estate-gateway", "influxql"])
            .timezone("browser")
            .time(time_from, "now")
            .refresh("30s")
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .readonly()
            .variables(list(variables))
        )

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def row(self, title: str) -> Board:
        self.builder.with_row(dash.Row(title).id(self._id()))
        return self

    def add(self, *panels: _PanelBuilder) -> Board:
        for panel in panels:
            self.builder.with_panel(panel.id(self._id()).datasource(DATASOURCE))
        return self

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.builder.build().to_json()
        return data

    def render(self) -> str:
        """The committed file's text: stable key order from the SDK, 2-space indent, UTF-8 titles."""
        return json.dumps(self.to_json(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"
