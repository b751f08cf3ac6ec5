"""ETags are the row's optimistic-concurrency ``version``: ``"3"``.

``If-Match`` on PUT/DELETE: the client's copy must be current (412 otherwise; ``*`` = exists).
``If-None-Match: *`` on PUT: create only (412 when it exists).
"""

from __future__ import annotations

from fastapi import Request, Response

from .errors import ApiError


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def check_preconditions(request: Request, version: int | None, what: str) -> None:
    """Checks If-Match / If-None-Match against the current ``version`` (None: does not exist)."""
    if_match = request.headers.get("if-match")
    if if_match is not None:
        tags = _tags(if_match)
        if version is None:
            raise ApiError(412, f"If-Match given but {what} does not exist")
        if "*" not in tags and etag(version) not in tags:
            raise ApiError(412, f"{what} was changed: its ETag is now {etag(version)}, "
                                f"not {if_match.strip()}; read it again and retry")
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and version is not None:
        tags = _tags(if_none_match)
        if "*" in tags or etag(version) in tags:
            raise ApiError(412, f"If-None-Match: {what} already exists (ETag {etag(version)})")
