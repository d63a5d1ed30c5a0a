"""FastAPI application. Downstream of the store and the feed: it reads them and sends operator actions
through the IncidentService, the one path that changes incident state. Every route but /health needs a
bearer token (see auth.py)."""

import time
from typing import Any

from fastapi import FastAPI

from gateway import __version__
from gateway.api.ack_links import ack_router
from gateway.api.context import ApiContext
from gateway.api.devices import device_router
from gateway.api.duty import duty_router
from gateway.api.incidents import incident_router
from gateway.api.vehicles import vehicle_router

__all__ = ["ApiContext", "create_app"]


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="estate-gateway", version=__version__, description="小区安防与设施物联网网关 API")

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - ctx.started, 1),
            **ctx.health(),
        }

    app.include_router(incident_router(ctx))
    app.include_router(device_router(ctx))
    app.include_router(vehicle_router(ctx))
    app.include_router(duty_router(ctx))
    app.include_router(ack_router(ctx))
    return app
