"""Render a tenant's provisioning model to Asterisk 22 configuration (pure: no I/O, no clock).

``render_tenant(config)`` gives the four per-tenant files, ``render_index(slugs)`` the index
files that ``#include`` them; paths are relative to the pbx-core directory under Asterisk's config
directory. Same input, same bytes. Any value that would be unsafe raises :class:`UnsafeValue`,
also for a TenantConfig built with ``model_construct`` (see :mod:`.escape`).

Queue members are added over AMI; :func:`member_interface`, :func:`state_interface` and
:func:`member_name` give the values to use so the dialplan and the members agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import dialplan, pjsip, queues, voicemail
from . import escape as esc
from .conf import Context, document
from .escape import UnsafeValue
from .model import tenant

__all__ = [
    "FILES",
    "UnsafeValue",
    "member_interface",
    "member_name",
    "render_index",
    "render_tenant",
    "state_interface",
]

FILES = ("pjsip.conf", "queues.conf", "extensions.conf", "voicemail.conf")


def render_tenant(config: Any) -> dict[str, bytes]:
    """``{"{slug}/pjsip.conf": b"...", ...}`` for one tenant (a schemas.TenantConfig)."""
    t = tenant(config)
    parts = {
        "pjsip.conf": pjsip.render(t),
        "queues.conf": queues.render(t),
        "extensions.conf": dialplan.render(t),
        "voicemail.conf": voicemail.render(t),
    }
    return {f"{t.slug}/{name}": document(parts[name]) for name in FILES}


def render_index(slugs: Sequence[str]) -> dict[str, bytes]:
    """The index files including every tenant's files, plus ``[pbx-dids]`` for inbound calls."""
    checked = sorted({esc.slug(s, f"slugs.{i}") for i, s in enumerate(slugs)})
    out = {}
    for name in FILES:
        parts = ["".join(f"#include pbx-core/{slug}/{name}\n" for slug in checked)]
        if name == "extensions.conf":
            ctx = Context("pbx-dids", comment="every tenant's numbers; entered from [pbx-from-trunk]")
            ctx.includes += [f"{slug}-dids" for slug in checked]
            parts.append(ctx.text())
        out[name] = document(parts)
    return out


def member_interface(slug: str, extension: str) -> str:
    """The queue member's Interface: a Local channel ringing all the user's devices."""
    return f"Local/{esc.check('extension', extension, 'extension')}@{esc.slug(slug)}-agents/n"


def state_interface(slug: str, extension: str) -> str:
    """The member's StateInterface: the hint over all the user's devices (busy on any = busy)."""
    return f"hint:{esc.check('extension', extension, 'extension')}@{esc.slug(slug)}-internal"


def member_name(name: Any, extension: str) -> str:
    """The member's MemberName: the user's name, sanitised (falls back to the extension)."""
    return esc.text(name, esc.check("extension", extension, "extension"))
