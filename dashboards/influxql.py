"""Raw InfluxQL targets and template variables for the provisioned InfluxDB datasource.

The foundation SDK ships no InfluxDB query builder, so a target is the dict Grafana's InfluxDB plugin
saves for a raw query, carried by the SDK's own escape hatch for untyped queries (`UnknownDataquery`).
InfluxQL, not Flux or SQL: the same query runs on InfluxDB 1.8+, on 2.x through a DBRP mapping and on
3.x, so one dashboard serves every deployment. Only plain SELECTs with GROUP BY time/tags are used (no
subqueries, no INTO), which every one of them supports.

Measurement, tag and field names follow the line-protocol contract in gateway/sinks/lines.py.
"""

from __future__ import annotations

from typing import Literal

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import dashboard as model

__all__ = [
    "DATABASE",
    "DATASOURCE",
    "DATASOURCE_UID",
    "InfluxQL",
    "matches",
    "tag_variable",
]

DATASOURCE_UID = "estate-influxdb"  # fixed in dashboards/provisioning/datasources/influxdb.yaml
DATABASE = "estate"
DATASOURCE = model.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)

ResultFormat = Literal["time_series", "table"]


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """One raw InfluxQL target. `alias` names series (`$tag_device`, `$col`); `table` keeps rows as rows."""

    def __init__(
        self, query: str, alias: str = "", ref_id: str = "A", result_format: ResultFormat = "time_series"
    ) -> None:
        self.target: dict[str, object] = {
            "refId": ref_id,
            "datasource": {"type": DATASOURCE.type_val, "uid": DATASOURCE.uid},
            "query": " ".join(query.split()),  # one line: what Grafana's raw editor shows
            "rawQuery": True,
            "resultFormat": result_format,
        }
        if alias:
            self.target["alias"] = alias

    def build(self) -> cogvariants.Dataquery:
        return UnknownDataquery(dict(self.target))


def matches(tag: str, variable: str | None = None) -> str:
    """`"estate" =~ /^$estate$/`: Grafana writes a multi-value or All selection as `(a|b)`, which a
    regex match takes as it is (an `=` comparison would not)."""
    return f'"{tag}" =~ /^${variable or tag}$/'


def tag_variable(
    name: str,
    label: str,
    measurement: str,
    key: str | None = None,
    where: str = "",
    multi: bool = True,
) -> dash.QueryVariable:
    """A variable listing a tag's values (`SHOW TAG VALUES`), refreshed with the time range."""
    query = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key or name}"'
    if where:
        query += f" WHERE {where}"
    variable = (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    return variable
