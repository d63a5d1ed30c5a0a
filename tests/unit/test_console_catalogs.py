"""The console's message catalogs: both languages complete, every key the templates and scripts use is
there, and no visible text is hard-coded in a template."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from gateway.api.auth import ROLE_RANK
from gateway.auth.jobs import JOBS
from gateway.auth.records import REGULATOR
from gateway.config.maintenance import DutyKind
from gateway.console.facilities import FACILITIES
from gateway.console.i18n import LANGS, catalog
from gateway.console.pages import KPI_SECTIONS
from gateway.console.views import BOARD_STATES, FIRE_FLAGS
from gateway.kpi.labels import KPI_LABELS
from gateway.model import AlarmState, Family, IncidentState, Priority

CONSOLE = Path(__file__).resolve().parents[2] / "gateway" / "console"
TEMPLATES = sorted((CONSOLE / "templates").glob("*.html"))
SCRIPTS = sorted((CONSOLE / "static").glob("*.js"))
LITERAL = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.]+)["']\s*[,)]""")
PREFIX = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.]+\.)["']\s*[~+]""")
# Values the templates and scripts build keys from (t("priority." ~ p)): every member needs a text.
ENUMS = {
    "priority.": [p.value for p in Priority],
    "state.": [s.value for s in IncidentState],
    "alarm.": [s.value for s in AlarmState],
    "family.": [f.value for f in Family],
    "role.": [*ROLE_RANK, REGULATOR],
    "job.": list(JOBS),
    "filter.": list(BOARD_STATES),
    "cause.": ["real", "false_alarm", "test", "fault"],
    "member.": ["active", "latched", "normal"],
    "dstate.": ["online", "offline", "unknown", "alarm", "out_of_service"],
    "reason.": [
        "unknown",
        "offline",
        "fault",
        "disabled",
        "not_auto",
        "alarm",
        "no_devices",
        "nobody_on_duty",
    ],
    "facility.": [f.key for f in FACILITIES] + [f"{f.key}.what" for f in FACILITIES],
    "kpi.period.": ["day", "rolling_24h", "month"],
    "kpi.name.": list(KPI_LABELS),
    "kpi.section.": [*KPI_SECTIONS, "other"],
    "fire.": list(FIRE_FLAGS),
    # guard tours and maintenance duties (estate page)
    "patrol.status.": ["due", "in_progress", "completed", "late", "out_of_order", "missed"],
    "patrol.cp.": ["pending", "on_time", "late", "skipped", "missed"],
    "maint.status.": ["ok", "due_soon", "overdue", "unknown"],
    "maint.how.": ["detected", "recorded"],
    "maint.kind.": list(get_args(DutyKind)),
}


def sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in [*TEMPLATES, *SCRIPTS]]


def test_both_languages_have_the_same_keys_and_no_empty_text() -> None:
    zh, en = (catalog(lang) for lang in LANGS)
    assert set(zh) == set(en), set(zh) ^ set(en)
    assert all(v.strip() for v in [*zh.values(), *en.values()])
    # The same placeholders in both languages.
    for key in zh:
        assert set(re.findall(r"{(\w+)}", zh[key])) == set(re.findall(r"{(\w+)}", en[key])), key


def test_every_key_used_exists() -> None:
    used: dict[str, Path] = {}
    prefixes: dict[str, Path] = {}
    for path, text in sources():
        used.update(dict.fromkeys(LITERAL.findall(text), path))
        prefixes.update(dict.fromkeys(PREFIX.findall(text), path))
    assert len(used) > 80  # the scan found the calls
    for lang in LANGS:
        missing = {k: p.name for k, p in used.items() if k not in catalog(lang)}
        assert not missing, (lang, missing)
    assert set(prefixes) <= {*ENUMS, "tl."}, set(prefixes) - set(ENUMS)
    for prefix, values in ENUMS.items():
        for lang in LANGS:
            missing = [v for v in values if prefix + v not in catalog(lang)]
            assert not missing, (lang, prefix, missing)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_no_visible_text_is_hard_coded(template: Path) -> None:
    text = template.read_text(encoding="utf-8")
    text = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", "", text, flags=re.S)
    text = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)
    for attribute in ("placeholder", "title", "aria-label", "alt", "value"):
        for value in re.findall(rf'\b{attribute}="([^"]*)"', text):
            assert not re.search(r"[A-Za-z\u4e00-\u9fff]{2,}", value) or attribute == "value", (
                attribute,
                value,
            )
    visible = re.sub(r"<[^>]+>", " ", text)
    words = re.findall(r"[A-Za-z\u4e00-\u9fff]{2,}", visible)
    assert not words, f"hard-coded text in {template.name}: {words}"
