"""Tenant naming convention (DESIGN.md): every Asterisk object of a tenant is ``{slug}-{name}``."""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"[a-z][a-z0-9]{0,15}")
# What may follow the slug in an Asterisk object name: no whitespace, no `;` `,` `(` `[` `$`.
OBJECT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")

# Objects that follow no tenant prefix (a lab Asterisk, a legacy queue) land here.
UNSCOPED_TENANT = "default"
# "pbx" prefixes the shared, tenant-less Asterisk objects (pbx-dids, pbx-outbound, ...).
RESERVED_SLUGS = frozenset({UNSCOPED_TENANT, "pbx"})


def tenant_of(name: str) -> str:
    """The tenant of a queue, endpoint or context name: the prefix before the first hyphen."""
    slug, sep, _ = name.partition("-")
    if sep and SLUG_RE.fullmatch(slug):
        return slug
    return UNSCOPED_TENANT


def is_valid_slug(slug: str) -> bool:
    return bool(SLUG_RE.fullmatch(slug)) and slug not in RESERVED_SLUGS


def object_name(slug: str, name: str) -> str:
    """Build ``{slug}-{name}``, refusing anything that could inject Asterisk config or dialplan."""
    if not is_valid_slug(slug):
        raise ValueError(f"invalid tenant slug {slug!r}: must match [a-z][a-z0-9]{{0,15}}")
    if not OBJECT_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid object name {name!r}: letters, digits, '_', '.', '+', '-' only")
    return f"{slug}-{name}"
