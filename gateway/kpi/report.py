"""The monthly assessment (每月考核) of one estate: one data structure, three renderings.

`build_report` gathers the month's KPIs with their targets and pass/fail, the daily series of the
time-weighted rates, incidents and response times by priority, and the top-10 alarms; `to_csv` writes
it as UTF-8 with a BOM (Excel then opens the Chinese text correctly); `to_html` renders the printable
A4 page (gateway/kpi/templates/report.html) with inline SVG charts and no external resource.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.config.kpi import KpiConfig
from gateway.kpi.compute import PRIORITIES, TIME_WEIGHTED
from gateway.kpi.engine import MonthDetail
from gateway.kpi.estate import KpiEstate
from gateway.kpi.labels import KPI_LABELS, PRIORITY_LABELS, SECTIONS, TEXT, unit_text
from gateway.kpi.svg import bar_chart, line_chart
from gateway.model import Priority

LANGS = ("zh-CN", "en")
COLOURS = {
    "equipment_intact_rate": "#0969da",
    "fire_intact_rate": "#cf222e",
    "septic_intact_rate": "#8250df",
    "generator_readiness": "#1a7f37",
}
PRIORITY_COLOURS = {"critical": "#cf222e", "high": "#bc4c00", "medium": "#bf8700", "low": "#57606a"}
_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "%":
        return f"{value:.2f}"
    if unit == "s":
        return f"{value:.1f}"
    return f"{value:g}" if value != int(value) else f"{int(value)}"


def duration(seconds: float | None, lang: str) -> str:
    """Seconds as a person reads them: 65 s, 14.2 min, 6.2 h."""
    zh = lang == "zh-CN"
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} 秒" if zh else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} 分钟" if zh else f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} 小时" if zh else f"{seconds / 3600:.1f} h"


def _shown(value: float | None, unit: str, lang: str) -> str:
    if unit == "s":
        return duration(value, lang)
    return fmt(value, unit) + (" %" if unit == "%" and value is not None else "")


def _target_text(config: KpiConfig, name: str) -> str:
    target = config.targets.get(name)
    if target is None:
        return ""
    unit = KPI_LABELS[name].unit if name in KPI_LABELS else ""
    bounds = []
    if target.min is not None:
        bounds.append(f"≥ {fmt(target.min, '')}{unit if unit == '%' else ''}")
    if target.max is not None:
        bounds.append(f"≤ {fmt(target.max, '')}{unit if unit == '%' else ''}")
    return ", ".join(bounds)


def build_report(
    detail: MonthDetail, estate: KpiEstate, config: KpiConfig, lang: str, generated_at: float
) -> dict[str, Any]:
    """Everything the assessment shows, as plain data (the JSON format of the report)."""
    values = detail.kpis.values
    rows = []
    for section, names in SECTIONS:
        for name in names:
            label, target = KPI_LABELS[name], config.targets.get(name)
            value = values.get(name)
            passed = None if target is None or value is None else target.passes(value)
            rows.append({
                "section": section.text(lang), "kpi": name, "label": label.text(lang), "value": value,
                "display": fmt(value, label.unit), "shown": _shown(value, label.unit, lang),
                "unit": unit_text(label.unit, lang),
                "target": _target_text(config, name), "pass": passed,
            })  # fmt: skip
    by_priority = []
    for p in PRIORITIES:
        entry: dict[str, Any] = {"priority": p, "label": PRIORITY_LABELS[p].text(lang)}
        entry["incidents"] = values.get(f"incidents_{p}", 0.0)
        for kind in ("mtta", "mttr"):
            entry[f"{kind}_s"] = values.get(f"{kind}_s_{p}")
            entry[f"{kind}_s_p90"] = values.get(f"{kind}_s_{p}_p90")
        entry["ack_sla_s"] = config.ack_sla_s.get(Priority(p))
        by_priority.append(entry)
    judged = [r for r in rows if r["pass"] is not None]
    tz = ZoneInfo(estate.timezone)
    return {
        "estate": estate.id,
        "estate_name": (estate.name_zh if lang == "zh-CN" else estate.name_en) or estate.id,
        "month": detail.kpis.label,
        "timezone": estate.timezone,
        "lang": lang,
        "generated_at": datetime.fromtimestamp(generated_at, tz).isoformat(timespec="seconds"),
        "period": [detail.daily[0][0].isoformat(), detail.daily[-1][0].isoformat()] if detail.daily else [],
        "kpis": values,
        "rows": rows,
        "targets": {"passed": sum(1 for r in judged if r["pass"]), "judged": len(judged)},
        "daily": [{"date": day.isoformat(), **rates} for day, rates in detail.daily],
        "incidents_by_priority": by_priority,
        "top_alarms": [
            {"rank": i, "alarm": key, "label": labels[0] if lang == "zh-CN" else labels[1], "count": count}
            for i, (key, count, labels) in enumerate(detail.top, start=1)
        ],
        "fire_points": detail.fire_points,
    }


def to_csv(report: dict[str, Any]) -> str:
    """The report as CSV, with a BOM so Excel reads it as UTF-8."""
    lang = report["lang"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([TEXT["title"].text(lang), report["estate_name"], report["month"]])
    w.writerow([TEXT["generated"].text(lang), report["generated_at"], report["timezone"]])
    w.writerow([])
    w.writerow(["section", "kpi", TEXT["kpi"].text(lang), TEXT["value"].text(lang), "unit",
                TEXT["target"].text(lang), TEXT["result"].text(lang)])  # fmt: skip
    for r in report["rows"]:
        result = "" if r["pass"] is None else TEXT["passed" if r["pass"] else "failed"].text(lang)
        w.writerow([r["section"], r["kpi"], r["label"], r["display"], r["unit"], r["target"], result])
    w.writerow([])
    names = list(TIME_WEIGHTED)
    w.writerow([TEXT["day"].text(lang), *(KPI_LABELS[n].text(lang) for n in names)])
    for day in report["daily"]:
        w.writerow([day["date"], *(fmt(day.get(n), "%") for n in names)])
    w.writerow([])
    w.writerow([TEXT["priority"].text(lang), "incidents", "mtta_s", "mtta_s_p90", "mttr_s", "mttr_s_p90"])
    for p in report["incidents_by_priority"]:
        w.writerow([p["label"], fmt(p["incidents"], ""), *(fmt(p[k], "s") for k in
                    ("mtta_s", "mtta_s_p90", "mttr_s", "mttr_s_p90"))])  # fmt: skip
    w.writerow([])
    w.writerow(
        [
            TEXT["rank"].text(lang),
            TEXT["source"].text(lang),
            TEXT["alarm"].text(lang),
            TEXT["count"].text(lang),
        ]
    )
    for a in report["top_alarms"]:
        w.writerow([a["rank"], a["alarm"], a["label"], a["count"]])
    return "\ufeff" + out.getvalue()


def to_html(report: dict[str, Any], config: KpiConfig) -> str:
    """The printable page: A4, print CSS, inline SVG, nothing fetched."""
    lang = report["lang"]
    days = [datetime.fromisoformat(d["date"]).date() for d in report["daily"]]
    series = [
        (KPI_LABELS[name].text(lang), COLOURS[name], [d.get(name) for d in report["daily"]])
        for name in TIME_WEIGHTED
        if any(d.get(name) is not None for d in report["daily"])
    ]
    equipment = config.targets.get("equipment_intact_rate")
    target = equipment.min if equipment else None
    target_label = f"{KPI_LABELS['equipment_intact_rate'].text(lang)} {TEXT['target'].text(lang)} {target:g}%"
    daily_svg = (
        line_chart(days, series, target=target, target_label=target_label if target else "") if series else ""
    )
    bars = [
        (p["label"], p["incidents"], PRIORITY_COLOURS[p["priority"]]) for p in report["incidents_by_priority"]
    ]
    peak = max([a["count"] for a in report["top_alarms"]] + [1])
    text = {key: label.text(lang) for key, label in TEXT.items()}
    sections = [
        (s.text(lang), [row for row in report["rows"] if row["kpi"] in names]) for s, names in SECTIONS
    ]
    return _ENV.get_template("report.html").render(
        r=report, t=text, daily_svg=daily_svg, priority_svg=bar_chart(bars), peak=peak, fmt=fmt,
        duration=lambda v: duration(v, lang),
        sections=sections,
    )  # fmt: skip
