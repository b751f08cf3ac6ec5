"""Every write leaves an :class:`AuditEntry`: who (key name and public id), what, which fields.

Secrets (device passwords, API keys, tokens) never reach the log: they are masked wherever they
appear in the recorded values.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ..provisioning.models import AuditEntry
from .auth import Principal

MASK = "***"
SECRET_FIELDS = frozenset({"secret", "key", "password", "token", "secret_hash"})

Action = Literal["create", "update", "delete", "apply"]


def mask(value: Any) -> Any:
    """``value`` with every secret-named field replaced by ``***`` (recursively)."""
    if isinstance(value, dict):
        return {k: (MASK if k in SECRET_FIELDS and v is not None else mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an audit entry records: the new values on create, the old ones on delete, and
    ``{"field": {"from": old, "to": new}}`` for the fields an update changed."""
    if before is None:
        return mask(after)
    if after is None:
        return mask(before)
    changed = {}
    for field in sorted(set(before) | set(after)):
        old, new = before.get(field), after.get(field)
        if old != new:
            changed[field] = {"from": mask(old) if field not in SECRET_FIELDS else MASK,
                              "to": mask(new) if field not in SECRET_FIELDS else MASK}
    return changed


def record(
    session: AsyncSession,
    principal: Principal,
    *,
    tenant_id: int | None,
    action: Action,
    entity: str,
    key: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEntry:
    """Adds the entry to ``session`` (committed with the change it describes). Give ``before``
    and/or ``after`` (plain JSON-able dicts, e.g. ``model.model_dump(mode="json")``), or
    ``changes`` directly (masked too)."""
    entry = AuditEntry(
        actor=principal.actor[:120],
        reseller_id=principal.reseller_id,
        tenant_id=tenant_id,
        action=action,
        entity=entity,
        entity_key=key[:64],
        changes=mask(changes) if changes is not None else diff(before, after),
    )
    session.add(entry)
    return entry
