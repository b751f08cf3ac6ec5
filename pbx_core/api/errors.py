"""One error shape for every failure, and the OpenAPI declarations that promise it.

``{"error": {"status": 422, "code": "validation_error", "message": "...", "fields": [...]}}`` -
also for FastAPI's own 404/405/422 and for unhandled exceptions (500, no details leaked).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path, get_route_path

log = logging.getLogger(__name__)

CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "apply_failed",
}


class FieldError(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    fields: list[FieldError] = []


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raise anywhere in a request to answer with the error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        fields: Sequence[FieldError | tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.fields = [f if isinstance(f, FieldError) else FieldError(field=f[0], message=f[1])
                       for f in fields]
        self.headers = dict(headers or {})


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def conflict(message: str, fields: Sequence[FieldError | tuple[str, str]] = ()) -> ApiError:
    return ApiError(409, message, fields=fields)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, f"{field}: {message}", fields=[(field, message)])


def error_response(
    status: int, message: str, *, code: str | None = None, fields: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(
        status=status, code=code or CODES.get(status, "error"), message=message, fields=list(fields)))
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


_DESCRIPTIONS = {
    401: "Missing, unknown or revoked API key",
    403: "The key's role may not do this in its own tenant",
    404: "No such object within the key's reach",
    409: "Conflicts with existing data (duplicate key, still referenced, limit reached)",
    412: "If-Match / If-None-Match precondition failed",
    422: "Invalid request; `fields` names each offending field",
    429: "Rate limit exceeded; retry after Retry-After seconds",
    502: "Asterisk refused the new configuration",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: every listed status answers with :class:`ErrorResponse`."""
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(s, CODES.get(s, "error"))}
            for s in statuses}


def _field_name(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_fields(exc: RequestValidationError) -> list[FieldError]:
    fields = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        # pydantic appends the validator's name for Annotated/after-validators: not a field.
        loc = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            loc, msg = ["body"], f"not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "missing":
            msg = "required"
        fields.append(FieldError(field=_field_name(loc) or "body", message=msg))
    return fields


def _allowed_methods(request: Request) -> set[str]:
    """Methods of every documented operation on this path (from the OpenAPI document: FastAPI's
    router internals are not a stable interface)."""
    app = request.app
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "allowed_methods", None)
    if table is None:
        table = [(compile_path(path)[0], {m.upper() for m in item})
                 for path, item in app.openapi().get("paths", {}).items()]
        app.state.allowed_methods = table
    path = get_route_path(request.scope)
    return set().union(*(m for regex, m in table if regex.match(path)))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, code=exc.code, fields=exc.fields, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        if exc.status_code == 400:  # FastAPI: a body it could not even decode (e.g. not UTF-8)
            return error_response(422, "the request body could not be read: send UTF-8 JSON",
                                  fields=[FieldError(field="body", message="not valid JSON")])
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such resource: {request.url.path}"
        if exc.status_code == 405:
            # FastAPI makes one route per method: Starlette's Allow names only the first one.
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
            message = f"{request.method} is not supported here; use {headers['Allow']}"
        return error_response(exc.status_code, message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _validation_fields(exc)
        summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:3])
        return error_response(422, f"invalid request - {summary}" if summary else "invalid request",
                              fields=fields)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # Pre-checks give the precise message; this is the race between two writers.
        log.info("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        return error_response(409, "conflicts with an object created meanwhile (duplicate key); retry")

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return error_response(409, "the object was changed by another request meanwhile; read it and retry")

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the request was not completed")
