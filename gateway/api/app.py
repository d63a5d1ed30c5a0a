"""FastAPI application. Downstream of the store and the feed: it reads them and sends operator actions
through the IncidentService, the one path that changes incident state. Every route declares its least role
(auth.require) or that it is public (health, login, signed ack links, console pages that check the session
themselves); credentials are config tokens, API keys or a console session (see auth.py)."""

import time
from typing import Any

from fastapi import FastAPI

from gateway import __version__
from gateway.api.ack_links import ack_router
from gateway.api.audit import AuditTrail
from gateway.api.auth import public
from gateway.api.cluster import cluster_router
from gateway.api.confirmations import confirmation_router
from gateway.api.context import ApiContext
from gateway.api.devices import device_router
from gateway.api.duty import duty_router
from gateway.api.feed import feed_router
from gateway.api.incident_actions import incident_action_router
from gateway.api.incidents import incident_router
from gateway.api.kpis import kpi_router
from gateway.api.maintenance import maintenance_router
from gateway.api.metrics import metrics_router
from gateway.api.patrol import patrol_router
from gateway.api.users import users_router
from gateway.api.vehicles import vehicle_router
from gateway.cluster.forward import ForwardToOwner, estate_reads, estate_resolvers
from gateway.console.pages import install_console
from gateway.evidence.routes import evidence_router

__all__ = ["ApiContext", "create_app"]


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="estate-gateway", version=__version__, description="小区安防与设施物联网网关 API")

    @app.get("/health", tags=["health"], dependencies=[public()])
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - ctx.started, 1),
            **ctx.health(),
        }

    app.include_router(incident_router(ctx))
    app.include_router(incident_action_router(ctx))
    app.include_router(feed_router(ctx))
    app.include_router(device_router(ctx))
    app.include_router(confirmation_router(ctx))  # two-person rule: pending dangerous commands
    app.include_router(vehicle_router(ctx))
    app.include_router(duty_router(ctx))
    app.include_router(ack_router(ctx))
    app.include_router(metrics_router(ctx))
    app.include_router(kpi_router(ctx))
    app.include_router(patrol_router(ctx))
    app.include_router(maintenance_router(ctx))
    app.include_router(evidence_router(ctx, ctx.evidence))  # plate pictures, estate-scoped
    app.include_router(users_router(ctx.auth))
    app.include_router(cluster_router(ctx))
    install_console(app, ctx)  # pages under /console/, its static files and headers, / redirect

    async def incident_estate(incident_id: str) -> str | None:
        incident = await ctx.service.get(int(incident_id)) if incident_id.isdigit() else None
        return incident.estate if incident else None

    # Every unsafe call is audited here, once (gateway/api/audit.py).
    app.add_middleware(
        AuditTrail,
        record=ctx.service.store.record_audit,
        trusted_proxies=ctx.auth.settings.trusted_proxies,
        resolvers={"incident_id": incident_estate},
    )
    if ctx.cluster is not None:  # outermost: a write for another instance's estate goes there
        app.add_middleware(
            ForwardToOwner,
            owner_of=ctx.cluster.owner_of,
            resolvers=estate_resolvers(incident_estate),
            instance=ctx.cluster.instance,
            reads=estate_reads(),
        )
    _document_plain_422(app)
    return app


def _document_plain_422(app: FastAPI) -> None:
    """FastAPI documents every 422 as a list of validation errors, but our own 422s (a plate that is no
    plate, a month that is no month) carry one sentence: the schema says both, so a client generated from
    it (and schemathesis) reads what is really sent."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError", {})
        detail = error.get("properties", {}).get("detail")
        if detail is not None and "anyOf" not in detail:
            error["properties"]["detail"] = {"anyOf": [detail, {"type": "string"}], "title": "Detail"}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
