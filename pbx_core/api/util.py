"""Small response helpers shared by the route modules."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request, Response

from .etag import set_etag


def utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def utc_opt(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def created(request: Request, response: Response, path: str, version: int | None = None) -> None:
    """201 with Location (``path`` relative to the API root, e.g. ``/tenants/acme``) and ETag."""
    response.status_code = 201
    root = request.scope.get("root_path", "").rstrip("/")
    response.headers["Location"] = f"{root}{path}"
    if version is not None:
        set_etag(response, version)
