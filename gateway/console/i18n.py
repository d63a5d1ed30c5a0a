"""Message catalogs of the console (zh-CN default, en), chosen by the `eg_lang` cookie.

Every visible string of the templates and scripts comes from here: templates call `t("key")`, scripts
read the catalog the page embeds as JSON. A missing key shows as the key itself (and the unit test
fails), never as a crash on a control-room screen.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

__all__ = ["DEFAULT_LANG", "LANGS", "Translator", "catalog", "pick_lang"]

CATALOGS = Path(__file__).parent / "i18n"
LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
COOKIE = "eg_lang"


@cache
def catalog(lang: str) -> dict[str, str]:
    text = (CATALOGS / f"{lang}.json").read_text(encoding="utf-8")
    data: dict[str, str] = json.loads(text)
    return data


def pick_lang(cookie: str | None) -> str:
    return cookie if cookie in LANGS else DEFAULT_LANG


class Translator:
    """`t(key, **values)`: the catalog's text with {placeholders} filled."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.messages = catalog(lang)

    @property
    def english(self) -> bool:
        return self.lang == "en"

    def __call__(self, key: str, **values: object) -> str:
        text = self.messages.get(key, key)
        return text.format(**values) if values else text
