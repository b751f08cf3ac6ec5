"""``limit``/``offset`` collections: ``{"items", "total", "limit", "offset"}`` plus a Link header."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


def _page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")] = 0,
) -> PageParams:
    return PageParams(limit, offset)


Paging = Annotated[PageParams, Depends(_page_params)]


def _link_next(request: Request, response: Response, params: PageParams, total: int) -> None:
    if params.offset + params.limit < total:
        url = request.url.include_query_params(limit=params.limit, offset=params.offset + params.limit)
        response.headers["Link"] = f'<{url}>; rel="next"'


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    params: PageParams,
    convert: Callable[[Any], T],
    request: Request,
    response: Response,
) -> Page[T]:
    """Runs ``stmt`` (already filtered and ordered) for one page; ``convert`` maps a row to its
    out-model. ``stmt`` must select one entity (or use ``convert`` on the Row)."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = (await session.execute(stmt.limit(params.limit).offset(params.offset))).scalars().all()
    _link_next(request, response, params, total)
    return Page[Any](items=[convert(r) for r in rows], total=total, limit=params.limit, offset=params.offset)


def page_of(items: Sequence[T], params: PageParams, request: Request, response: Response) -> Page[T]:
    """A page of an in-memory list (small collections built in Python)."""
    _link_next(request, response, params, len(items))
    return Page[Any](items=list(items[params.offset:params.offset + params.limit]), total=len(items),
                     limit=params.limit, offset=params.offset)
