"""The web app: wallboard UI and websocket hub, /metrics, /healthz (REST API routers mount here too)."""

from .app import create_app
from .auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHORISED, Forbidden, Scope, StaticTokens, TokenVerifier
from .hub import Client, Hub
from .server import serving, uvicorn_config

__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_UNAUTHORISED",
    "Client",
    "Forbidden",
    "Hub",
    "Scope",
    "StaticTokens",
    "TokenVerifier",
    "create_app",
    "serving",
    "uvicorn_config",
]
