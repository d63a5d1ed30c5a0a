"""One-click acknowledge from a notification. The signed link is the credential (no bearer token), so
it is scoped to one incident and one person and expires. GET only shows the incident and a button:
chat apps (DingTalk, WeCom) fetch links to preview them, and a preview must not acknowledge anything.
POST acknowledges, as `link:<person>`, recorded in the timeline and the audit trail."""

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.api.audit import annotate
from gateway.api.auth import public
from gateway.api.context import ApiContext
from gateway.escalation.links import InvalidLink, LinkClaim
from gateway.incidents import IncidentError

_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>确认事件 / Acknowledge</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}
button{{font-size:1.2rem;padding:.6rem 1.4rem}}</style></head><body>{body}</body></html>"""


def ack_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["acknowledge links"])

    def page(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(_PAGE.format(body=body), status_code=status)

    def verified(token: str) -> LinkClaim | HTMLResponse:
        """The link's claim, or the page that says why there is none."""
        if ctx.ack_links is None:
            return page("<p>未启用 / not enabled</p>", 404)
        try:
            return ctx.ack_links.verify(token)
        except InvalidLink as exc:
            return page(f"<p>链接无效 / {html.escape(str(exc))}</p>", 403)

    @router.get("/ack/{token}", response_class=HTMLResponse, dependencies=[public()])  # the link signs
    async def show(token: str) -> HTMLResponse:
        claim = verified(token)
        if isinstance(claim, HTMLResponse):
            return claim
        incident = await ctx.service.get(claim.incident_id)
        if incident is None:
            return page("<p>事件不存在 / no such incident</p>", 404)
        state = html.escape(incident.state.value)
        return page(
            f"<h2>{html.escape(incident.title)}</h2><p>{html.escape(incident.title_en)}</p>"
            f"<p>#{incident.id} · {html.escape(incident.estate)} · {state}</p>"
            f'<form method="post"><button type="submit">确认 / Acknowledge</button></form>'
        )

    @router.post("/ack/{token}", response_class=HTMLResponse, dependencies=[public()])
    async def acknowledge(token: str, request: Request) -> HTMLResponse:
        claim = verified(token)
        if isinstance(claim, HTMLResponse):
            return claim
        source = request.client.host if request.client else ""
        actor = f"link:{claim.person}"
        try:
            incident = await ctx.service.acknowledge(claim.incident_id, actor, source, "one-click link")
        except IncidentError as exc:
            return page(f"<p>{html.escape(str(exc))}</p>", 409)
        # Written once by the audit middleware (gateway/api/audit.py), with the status.
        annotate(request, actor=actor, action="incident:ack", estate=incident.estate, target=str(incident.id),
                 link=True)  # fmt: skip
        return page(f"<h2>已确认 / Acknowledged</h2><p>#{incident.id} {html.escape(incident.title)}</p>")

    return router
