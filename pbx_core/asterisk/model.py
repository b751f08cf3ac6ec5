"""The renderer's checked view of a TenantConfig: identifiers validated by :mod:`.escape`,
collections sorted by their key and free of duplicates, so the same tenant always renders the
same bytes whatever order its parts came in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import escape as esc

T = TypeVar("T")

DEVICE_KINDS = frozenset({"desk", "softphone", "webrtc"})
LANGUAGES = frozenset({"nl", "en"})


@dataclass(frozen=True)
class Device:
    name: str
    kind: str
    secret: str


@dataclass(frozen=True)
class User:
    extension: str
    display: str  # sanitised free text
    devices: tuple[Device, ...]


@dataclass(frozen=True)
class Tenant:
    slug: str
    timezone: str
    language: str
    operator: Any
    outbound_caller_id: str | None
    users: tuple[User, ...]
    # (short name, raw object, field path): the renderers check the rest of each object.
    queues: tuple[tuple[str, Any, str], ...]
    menus: tuple[tuple[str, Any, str], ...]
    hours: tuple[tuple[str, Any, str], ...]
    dids: tuple[tuple[str, Any, str], ...]


def _seq(value: Any, field: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise esc.UnsafeValue(field, value, "must be a list")
    return tuple(value)


def _unique(
    items: Iterable[tuple[str, T]], field: str, sort_key: Callable[[str], Any] = str
) -> list[tuple[str, T]]:
    seen: dict[str, T] = {}
    for key, item in items:
        if key in seen:
            raise esc.UnsafeValue(field, key, "duplicate")
        seen[key] = item
    return sorted(seen.items(), key=lambda kv: sort_key(kv[0]))


def _ext_order(ext: str) -> tuple[int, str]:
    return len(ext), ext  # numeric order for digit strings without leading zeros


def _device(d: Any, field: str) -> Device:
    name = esc.check("device", getattr(d, "name", None), f"{field}.name")
    return Device(
        name=name,
        kind=esc.choice(getattr(d, "kind", None), DEVICE_KINDS, f"{field}.kind"),
        secret=esc.check("secret", getattr(d, "secret", None), f"{field}.secret"),
    )


def _user(u: Any, field: str) -> User:
    ext = esc.check("extension", getattr(u, "extension", None), f"{field}.extension")
    devices = [_device(d, f"{field}.devices.{i}") for i, d in enumerate(_seq(getattr(u, "devices", None),
                                                                           f"{field}.devices"))]
    ordered = _unique(((d.name, d) for d in devices), f"users.{ext}.devices")
    return User(extension=ext, display=esc.text(getattr(u, "name", None), ext),
                devices=tuple(d for _, d in ordered))


def _named(items: Any, collection: str, key: str, kind: str) -> tuple[tuple[str, Any, str], ...]:
    named = []
    for i, item in enumerate(_seq(items, collection)):
        name = esc.check(kind, getattr(item, key, None), f"{collection}.{i}.{key}")
        named.append((name, (item, f"{collection}.{name}")))
    sort_key = _ext_order if kind == "extension" else str
    return tuple((name, item, field) for name, (item, field) in _unique(named, collection, sort_key))


def tenant(config: Any) -> Tenant:
    slug = esc.slug(getattr(config, "slug", None))
    users = [_user(u, f"users.{i}") for i, u in enumerate(_seq(getattr(config, "users", None), "users"))]
    caller_id = getattr(config, "outbound_caller_id", None)
    return Tenant(
        slug=slug,
        timezone=esc.timezone(getattr(config, "timezone", None)),
        language=esc.choice(getattr(config, "language", None), LANGUAGES, "language"),
        operator=getattr(config, "operator", None),
        outbound_caller_id=(
            None if caller_id is None else esc.check("number", caller_id, "outbound_caller_id")
        ),
        users=tuple(u for _, u in _unique(((u.extension, u) for u in users), "users", _ext_order)),
        queues=_named(getattr(config, "queues", None), "queues", "name", "name"),
        menus=_named(getattr(config, "menus", None), "menus", "name", "name"),
        hours=_named(getattr(config, "hours", None), "hours", "name", "name"),
        dids=_named(getattr(config, "dids", None), "dids", "number", "number"),
    )
