"""Cross-object validation of a write before it is committed.

The tenant's configuration as it would be after the change (the *candidate*) goes through
:func:`pbx_core.provisioning.rules.check`. Problems inside the written object become a 422 that
names the request field (``body.options.1.target``); a delete that leaves others pointing at
nothing becomes a 409 that names the referrers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..provisioning.models import Tenant
from ..provisioning.schemas import TenantConfig, TenantIn, TenantLimits
from .errors import ApiError, FieldError

# TenantConfig collection -> the attribute that is its natural key (the URL's last segment).
KEY_ATTR: dict[str, str] = {
    "users": "extension",
    "queues": "name",
    "menus": "name",
    "hours": "name",
    "dids": "number",
}


async def current_config(session: AsyncSession, tenant: Tenant) -> TenantConfig:
    from ..provisioning.snapshot import load_tenant_config

    return await load_tenant_config(session, tenant.slug)


def limits_of(tenant: Tenant) -> TenantLimits:
    return TenantLimits.model_validate(tenant.limits or {})


def replaced(config: TenantConfig, collection: str, key: str, item: Any | None) -> TenantConfig:
    """``config`` with the ``collection`` item keyed ``key`` replaced by ``item`` (None: removed),
    kept sorted by key like the snapshot is."""
    attr = KEY_ATTR[collection]
    items = [i for i in getattr(config, collection) if getattr(i, attr) != key]
    if item is not None:
        items.append(item)
    items.sort(key=lambda i: getattr(i, attr))
    return config.model_copy(update={collection: tuple(items)})


def _path(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _problems(config: TenantConfig, limits: TenantLimits) -> list[tuple[tuple[str | int, ...], str]]:
    from ..provisioning.rules import check

    return [(tuple(p.loc), p.msg) for p in check(config, limits)]


async def check_candidate(
    session: AsyncSession,
    tenant: Tenant,
    change: Callable[[TenantConfig], TenantConfig],
    *,
    target: tuple[str | int, ...] = (),
    limits: TenantLimits | None = None,
) -> None:
    """422 if ``change`` applied to the tenant's current configuration breaks a rule.

    ``target`` is the loc prefix of the written object (``("menus", "main")``; ``()`` for the
    tenant itself): problems under it are reported as ``body.<rest>``, even when they existed
    before; problems elsewhere only when the change introduced them. Call before touching the
    session's objects (the snapshot reads the database)."""
    current = await current_config(session, tenant)
    limits_now = limits_of(tenant)
    before = set(_problems(current, limits_now))
    after = _problems(change(current), limits or limits_now)
    fields: list[FieldError] = []
    for loc, msg in after:
        if target and loc[: len(target)] == target:
            fields.append(FieldError(field=_path(("body", *loc[len(target):])), message=msg))
        elif (loc, msg) not in before:
            fields.append(_elsewhere(loc, msg, tenant_level=not target))
    if fields:
        summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:3])
        raise ApiError(422, f"the change would break the tenant's configuration - {summary}", fields=fields)


_TENANT_FIELDS = frozenset(TenantIn.model_fields)
_COUNT_LIMITS = {"users": "limits.max_users", "queues": "limits.max_queues", "menus": "limits.max_menus"}


def _elsewhere(loc: tuple[str | int, ...], msg: str, *, tenant_level: bool) -> FieldError:
    """A problem outside the written object: on a tenant write it is one of the tenant's own
    fields, or else its limits (a count or a menu depth the new limits no longer allow)."""
    if tenant_level and loc and loc[0] in _TENANT_FIELDS:
        return FieldError(field=_path(("body", *loc)), message=msg)
    if tenant_level and len(loc) == 1 and str(loc[0]) in _COUNT_LIMITS:
        return FieldError(field=f"body.{_COUNT_LIMITS[str(loc[0])]}", message=msg)
    return FieldError(field="body.limits" if tenant_level else "body", message=f"{_path(loc)}: {msg}")


async def check_removal(session: AsyncSession, tenant: Tenant, collection: str, key: str, what: str,
                        *, cascade: Callable[[TenantConfig], TenantConfig] | None = None) -> None:
    """409 naming the referrers if removing ``collection[key]`` leaves something pointing at it.
    ``cascade`` also removes what the database deletes along with it (e.g. queue memberships)."""
    current = await current_config(session, tenant)
    limits = limits_of(tenant)
    before = set(_problems(current, limits))
    candidate = replaced(current, collection, key, None)
    if cascade is not None:
        candidate = cascade(candidate)
    new = [(loc, msg) for loc, msg in _problems(candidate, limits) if (loc, msg) not in before]
    if new:
        referrers = sorted({_path(loc) for loc, _ in new})
        raise ApiError(409, f"{what} is still used by {', '.join(referrers)}; change those first",
                       fields=[FieldError(field=_path(loc), message=msg) for loc, msg in new])
