"""HTTP API (FastAPI): incidents, devices, health. Every route but /health needs a bearer token."""

from gateway.api.app import create_app
from gateway.api.auth import Principal, TokenAuth
from gateway.api.context import ApiContext

__all__ = ["ApiContext", "Principal", "TokenAuth", "create_app"]
