"""KPI routes: the figures per estate and period, and the monthly assessment report (JSON, CSV, HTML).

Scope: an estate outside the caller's scope is a 404, exactly like one that does not exist; without
`estate`, every estate in the caller's scope and no other. 503 when the gateway runs without a KPI
engine.
"""

import re
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.kpi import KpiEngine, KpiSet
from gateway.kpi.report import build_report, to_csv, to_html

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class KpiSetOut(BaseModel):
    estate: str = Field(description="Estate id")
    period: Literal["day", "month", "rolling_24h"] = Field(description="Period kind")
    label: str = Field(description="2026-11-23 (day), 2026-11 (month) or rolling_24h")
    start: float = Field(description="Period start, epoch s (local midnight for days and months)")
    end: float = Field(description="Period end, epoch s (now for rolling_24h)")
    values: dict[str, float] = Field(description="KPI name → value; rates in %, times in s")


def _out(kpi_set: KpiSet) -> KpiSetOut:
    return KpiSetOut(
        estate=kpi_set.estate, period=kpi_set.period, label=kpi_set.label,
        start=kpi_set.start, end=kpi_set.end, values=kpi_set.values,
    )  # fmt: skip


def _month(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _MONTH.match(text)
    if match is None:
        raise HTTPException(422, "month must look like 2026-11")
    return int(match[1]), int(match[2])


def kpi_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["kpis"])

    User = Annotated[Principal, Depends(bearer(ctx.auth))]
    viewer = require(ctx.auth, "viewer", regulator=True)  # the regulator reads KPIs of every estate

    def engine() -> KpiEngine:
        if ctx.kpi is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "KPIs are not computed on this gateway")
        return ctx.kpi

    def visible(user: Principal, estate: str) -> KpiEngine:
        """The engine, once the estate is known to be the caller's: scope is judged first, so an estate
        outside it is a 404 whatever this gateway runs."""
        if not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        kpi = engine()
        if kpi.estate(estate) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")
        return kpi

    @router.get("/kpis", response_model=list[KpiSetOut], dependencies=[viewer])
    async def list_kpis(
        user: User,
        estate: str | None = None,
        period: Literal["day", "month", "rolling_24h"] = "day",
        day: Annotated[date | None, Query(alias="date", description="Local date (period=day)")] = None,
        month: Annotated[str | None, Query(description="YYYY-MM (period=month)")] = None,
    ) -> list[KpiSetOut]:
        """KPIs of one estate, or of every estate in the caller's scope (default: today, local time)."""
        wanted = _month(month)
        kpi = visible(user, estate) if estate else engine()
        estates = [estate] if estate else [e for e in kpi.estates if user.can_see(e)]
        await kpi.refresh(estates)  # several instances: others' estates as they last saved them

        def compute(name: str) -> KpiSetOut:
            if period == "day":
                return _out(kpi.day(name, day))
            if period == "month":
                return _out(kpi.month(name, *(wanted or (None, None))))
            return _out(kpi.rolling(name))

        return await kpi.paced(estates, compute)  # a regulator's hundreds of estates: a few per loop turn

    @router.get("/estates/{estate}/report", response_model=None, dependencies=[viewer])
    async def monthly_report(
        estate: str,
        user: User,
        month: Annotated[str | None, Query(description="YYYY-MM; default: this month")] = None,
        fmt: Annotated[Literal["json", "csv", "html"], Query(alias="format")] = "json",
        lang: Literal["zh-CN", "en"] = "zh-CN",
    ) -> Response:
        """The monthly assessment (每月考核): every KPI with its target, daily rates, incidents by
        priority, top-10 alarms. HTML is a printable A4 page; CSV opens in Excel (UTF-8 with BOM)."""
        kpi = visible(user, estate)
        spec = kpi.estate(estate)
        assert spec is not None
        await kpi.refresh([estate])
        now = kpi.clock.now()
        year, mon = _month(month) or (kpi.today(estate, now).year, kpi.today(estate, now).month)
        report = build_report(kpi.month_detail(estate, year, mon, now), spec, kpi.config, lang, now)
        name = f"kpi-report-{estate}-{year:04d}-{mon:02d}"
        if fmt == "csv":
            headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
            return Response(to_csv(report), media_type="text/csv; charset=utf-8", headers=headers)
        if fmt == "html":
            return HTMLResponse(to_html(report, kpi.config))
        body: dict[str, Any] = report
        return JSONResponse(body)

    return router
