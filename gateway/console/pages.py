"""The control-room console: server-rendered pages under /console/ (Jinja2), one small script each.

Pages need a logged-in user (the session cookie, or a bearer token); without one they redirect to the
login page. They render only what the store returns for that user's scope: an incident or device of
another estate is "not found", exactly as in the API.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.api.auth import Principal, public, require
from gateway.api.context import ApiContext
from gateway.api.incidents import visible
from gateway.api.maintenance import duties_of
from gateway.api.patrol import tours_of_day
from gateway.api.schemas import incident_out
from gateway.auth.two_person import DualControl
from gateway.console import views
from gateway.console.headers import ConsoleHeaders, static_files, static_url
from gateway.console.i18n import COOKIE, LANGS, Translator, catalog, pick_lang
from gateway.console.readings import readings_router
from gateway.kpi.labels import KPI_LABELS, SECTIONS
from gateway.model import Incident, IncidentState, Priority

__all__ = ["console_router", "install_console"]

TEMPLATES = Environment(
    loader=FileSystemLoader(str(views.__file__).rsplit("/", 1)[0] + "/templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.globals["static_url"] = static_url
# Pages check the login themselves (a redirect to the login page, not a 401), so they declare no role.
PAGE = [public()]
KPI_SECTIONS = ("facility", "fire", "response", "load", "vehicles", "patrol")  # catalog kpi.section.<key>
ROLE_RANK = {"viewer": 0, "operator": 1, "supervisor": 2, "admin": 3}


def safe_next(target: str | None) -> str:
    """Only a path on this server: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/console/"
    return target


# The regulator reads KPIs and reports only (gateway/auth/tenancy.py): every other page sends it there.
REGULATOR_PAGES = frozenset({"/console/kpis"})


async def page_user(ctx: ApiContext, request: Request) -> Principal | None:
    try:
        user = await ctx.auth.authenticate(request)
    except HTTPException:
        return None
    if user.regulator and request.url.path not in REGULATOR_PAGES:
        raise HTTPException(303, "regulators see KPIs only", {"Location": "/console/kpis"})
    return user


def to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(here, safe='')}", status_code=303)


class Page:
    """Renders a template with what every page needs: catalog, language, user, estates, nav."""

    def __init__(self, ctx: ApiContext, request: Request, user: Principal | None) -> None:
        self.ctx, self.request, self.user = ctx, request, user
        self.t = Translator(pick_lang(request.cookies.get(COOKIE)))

    def estates(self) -> list[dict[str, str]]:
        if self.user is None:
            return []
        return [
            {"id": e, "name": views.estate_name(self.ctx, e, self.t), "tz": views.tz_of(self.ctx, e)}
            for e in views.visible_estates(self.ctx, self.user)
        ]

    def render(self, name: str, status: int = 200, data: dict[str, Any] | None = None, **kw: Any) -> Response:
        here = self.request.url.path + (f"?{self.request.url.query}" if self.request.url.query else "")
        estates = self.estates()
        page_data = {
            "lang": self.t.lang,
            "user": self.user.name if self.user else None,
            "role": self.user.role if self.user else None,
            "estates": {e["id"]: {"name": e["name"], "tz": e["tz"]} for e in estates},
            **(data or {}),
        }
        html = TEMPLATES.get_template(name).render(
            t=self.t, lang=self.t.lang, user=self.user, estates=estates, here=here,
            other_lang="en" if self.t.lang == "zh-CN" else "zh-CN", quote=quote,
            data=page_data, messages=catalog(self.t.lang), can=self.can, **kw,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status)

    def can(self, role: str) -> bool:
        return self.user is not None and ROLE_RANK.get(self.user.role, -1) >= ROLE_RANK[role]

    def not_found(self) -> Response:
        return self.render("not_found.html", 404)


def _member_rows(incident: Incident) -> list[dict[str, str]]:
    rows = []
    for key, status in (incident.members or {incident.alarm_key: "active"}).items():
        estate, device, rule = ([*key.split("/", 2), "", ""])[:3]
        rows.append({"device": device, "rule": rule, "status": status, "estate": estate})
    return rows


def _actions(page: Page, incident: Incident) -> list[str]:
    """The actions the user's role may take in the incident's state (the API checks again)."""
    if not page.can("operator"):
        return []
    live = incident.state in views.ACTIVE
    actions = []
    if incident.state is IncidentState.OPEN:
        actions.append("ack")
    if live:
        actions += ["assign", "comment"]
        actions.append("unshelve" if incident.shelved_until else "shelve")
        actions.append("resolve")
    elif incident.state is IncidentState.RESOLVED:
        actions.append("comment")
        if page.can("supervisor"):
            actions.append("close")
    return actions


async def _pending_commands(ctx: ApiContext, estate: str, device: str) -> list[dict[str, Any]]:
    """The device's commands waiting for a second person (gateway/api/confirmations.py)."""
    if not ctx.dangerous.get((estate, device)):
        return []
    found = await DualControl(ctx.service.store, ctx.service.clock).recent(frozenset([estate]))
    return [
        {"id": r.id, "command": r.command, "requested_by": r.requested_by, "reason": r.reason,
         "expires_at": r.expires_at, "confirm_by": list(r.confirm_by)}
        for r in found
        if r.device == device and r.state == "pending"
    ]  # fmt: skip


def console_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", dependencies=PAGE)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/login", dependencies=PAGE)
    async def login_alias(request: Request) -> RedirectResponse:
        """The auth layer's default `api.auth.login_page` (a refused form login returns there)."""
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/console/login{query}", status_code=303)

    @router.get("/console", dependencies=PAGE)
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console/login", dependencies=PAGE)
    async def login(request: Request, next: str | None = None, error: str | None = None) -> Response:
        user = await page_user(ctx, request)
        if user is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return Page(ctx, request, None).render("login.html", next=safe_next(next), error=error is not None)

    @router.get("/console/lang", dependencies=PAGE)
    async def switch_lang(to: str, next: str | None = None) -> Response:
        response = RedirectResponse(safe_next(next), status_code=303)
        if to in LANGS:
            response.set_cookie(COOKIE, to, max_age=365 * 86400, samesite="lax", path="/")
        return response

    @router.get("/console/", dependencies=PAGE)
    async def board(
        request: Request,
        estate: Annotated[str | None, Query(max_length=64)] = None,
        state: Annotated[str, Query(max_length=16)] = "active",
    ) -> Response:
        user = await page_user(ctx, request)
        if user is None:
            return to_login(request)
        page = Page(ctx, request, user)
        state = state if state in views.BOARD_STATES else "active"
        estate = estate or None
        try:
            incidents = await views.board_incidents(ctx, user, estate, state)
        except HTTPException:  # an estate outside the caller's scope: as if it did not exist
            return page.not_found()
        counts = {p.value: sum(1 for i in incidents if i.priority is p) for p in Priority}
        data = {"page": "board", "filters": {"estate": estate, "state": state},
                "incidents": views.incidents_json(incidents)}  # fmt: skip
        return page.render(
            "board.html", data=data, incidents=incidents, counts=counts, states=views.BOARD_STATES,
            filters={"estate": estate or "", "state": state},
            fmt=lambda i: views.fmt_time(ctx, i.estate, i.opened_at),
            estate_name=lambda e: views.estate_name(ctx, e, page.t), now=time.time(),
        )  # fmt: skip

    @router.get("/console/incidents/{incident_id}", dependencies=PAGE)
    async def incident_page(request: Request, incident_id: int) -> Response:
        user = await page_user(ctx, request)
        if user is None:
            return to_login(request)
        page = Page(ctx, request, user)
        try:
            incident = await visible(ctx, user, incident_id)
        except HTTPException:
            return page.not_found()
        out = incident_out(incident, True).model_dump(mode="json")
        evidence = await ctx.evidence.for_incident(incident) if ctx.evidence else None
        return page.render(
            "incident.html", data={"page": "incident", "incident": out}, incident=incident, evidence=evidence,
            members=_member_rows(incident), actions=_actions(page, incident),
            fmt=lambda ts: views.fmt_time(ctx, incident.estate, ts),
            estate_name=views.estate_name(ctx, incident.estate, page.t),
        )  # fmt: skip

    _estate_routes(ctx, router)
    return router


def _estate_routes(ctx: ApiContext, router: APIRouter) -> None:
    """The overview, device and KPI pages."""

    @router.get("/console/estates/{estate}", dependencies=PAGE)
    async def estate_page(request: Request, estate: str) -> Response:
        user = await page_user(ctx, request)
        if user is None:
            return to_login(request)
        page = Page(ctx, request, user)
        if not user.can_see(estate) or estate not in views.visible_estates(ctx, user):
            return page.not_found()
        unresolved = await views.board_incidents(ctx, user, estate, "active")
        alarms = views.device_alarms(unresolved)
        rows = views.device_rows(ctx, estate, alarms)
        checks = views.facilities(ctx, estate, alarms)
        families = {r.info.device: r.info.family for r in rows}
        data = {"page": "estate", "estate": estate, "tz": views.tz_of(ctx, estate), "families": families,
                "headline": views.HEADLINE, "fire_flags": views.FIRE_FLAGS}  # fmt: skip
        return page.render(
            "estate.html", data=data, estate=estate, estate_label=views.estate_name(ctx, estate, page.t),
            rows=rows, checks=checks, active=len(unresolved),
            outputs=ctx.local_outputs.of_estate(estate) if ctx.local_outputs else [],
            fmt=lambda ts: views.fmt_time(ctx, estate, ts),
            **await rounds_of(ctx, estate, user),  # today's guard tours, maintenance duties
        )  # fmt: skip

    @router.get("/console/api/estates/{estate}/facilities", dependencies=[require(ctx.auth, "viewer")])
    async def facilities_json(request: Request, estate: str) -> list[dict[str, Any]]:
        """The checklist again, for the overview's periodic refresh."""
        user = await page_user(ctx, request)
        if user is None or not user.can_see(estate) or estate not in views.visible_estates(ctx, user):
            raise HTTPException(404, "estate not found")
        alarms = views.device_alarms(await views.board_incidents(ctx, user, estate, "active"))
        return [
            {"key": c.key, "ok": c.ok, "reason": c.reason,
             "devices": [{"device": d.device, "ok": d.ok, "reason": d.reason} for d in c.devices]}
            for c in views.facilities(ctx, estate, alarms)
        ]  # fmt: skip

    @router.get("/console/devices/{estate}/{device}", dependencies=PAGE)
    async def device_page(request: Request, estate: str, device: str) -> Response:
        user = await page_user(ctx, request)
        if user is None:
            return to_login(request)
        page = Page(ctx, request, user)
        info = next((d for d in ctx.devices if d.estate == estate and d.device == device), None)
        if info is None or not user.can_see(estate):
            return page.not_found()
        latest = ctx.recent.latest(estate, device) if ctx.recent else {}
        points = [
            {"name": p, "label": info.location_of(p), "zone": info.zone_of(p),
             "value": views.shown_value(latest[p].value) if p in latest else "",
             "unit": ctx.recent.unit(estate, device, p) if ctx.recent else "",
             "time": views.fmt_time(ctx, estate, latest[p].ts, "%H:%M:%S") if p in latest else "",
             "numeric": p in latest and isinstance(latest[p].value, int | float)}
            for p in sorted({*info.points, *latest})
        ]  # fmt: skip
        alarms = views.device_alarms(await views.board_incidents(ctx, user, estate, "active"))
        row = next(r for r in views.device_rows(ctx, estate, alarms) if r.info.device == device)
        chartable = [p["name"] for p in points if p["numeric"]]
        pending = await _pending_commands(ctx, estate, device)  # two-person rule (confirmations.js)
        data = {"page": "device", "estate": estate, "device": device, "tz": views.tz_of(ctx, estate),
                "points": chartable, "dangerous": sorted(ctx.dangerous.get((estate, device), {})),
                "pending": pending, "me": user.person, "can_confirm": page.can("operator")}  # fmt: skip
        return page.render(
            "device.html", data=data, info=info, row=row, points=points, pending=pending,
            commands=sorted(ctx.command_policy.get((estate, device), {})),
            estate_label=views.estate_name(ctx, estate, page.t),
        )  # fmt: skip

    @router.get("/console/kpis", dependencies=PAGE)
    async def kpi_page(request: Request, estate: str | None = None) -> Response:
        user = await page_user(ctx, request)
        if user is None:
            return to_login(request)
        page = Page(ctx, request, user)
        shown = views.visible_estates(ctx, user)
        if estate not in shown:
            estate = shown[0] if shown else None
        sections = [[key, names] for key, (_, names) in zip(KPI_SECTIONS, SECTIONS, strict=False)]
        units = {name: label.unit for name, label in KPI_LABELS.items()}
        data = {"page": "kpi", "estate": estate, "sections": sections, "units": units}
        return page.render("kpi.html", data=data, estate=estate)


async def rounds_of(ctx: ApiContext, estate: str, user: Principal) -> dict[str, Any]:
    """The estate page's patrol and maintenance sections (empty when the estate has none)."""
    patrol = ctx.patrol is not None and any(e == estate for e, _ in ctx.patrol.routes)
    tracker = ctx.maintenance
    duties = await duties_of(tracker, estate) if tracker is not None else []
    return {
        "tours": await tours_of_day(ctx, estate, None) if patrol else [], "patrol_on": patrol,
        "duties": duties, "can_record": user.at_least("operator"),
    }  # fmt: skip


def install_console(app: FastAPI, ctx: ApiContext) -> None:
    """Mount the console on the API app: pages, the readings route, static files, headers."""
    app.include_router(console_router(ctx))
    app.include_router(readings_router(ctx))
    app.mount("/console/static", static_files(), name="console-static")
    app.add_middleware(ConsoleHeaders, img_sources=ctx.evidence.embed_origins() if ctx.evidence else ())
