"""The config models' common base and the zh/en text pair, shared by `schema` and the modules it imports
(patrol, maintenance, tenancy, evidence), which cannot import `schema` itself."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LocalizedText", "Strict"]


class Strict(BaseModel):
    """Unknown keys are errors; a parsed config does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalizedText(Strict):
    zh: str = Field(description="Chinese (zh-CN) text, shown first")
    en: str = Field(description="English text")
