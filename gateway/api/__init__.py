"""HTTP API (FastAPI): incidents, devices, health. Every route but /health needs a bearer token."""

from gateway.api.app import ApiContext, create_app
from gateway.api.auth import Principal, TokenAuth

__all__ = ["ApiContext", "Principal", "TokenAuth", "create_app"]
