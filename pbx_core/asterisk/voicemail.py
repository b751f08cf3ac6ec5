"""voicemail.conf of one tenant: context ``[{slug}]``, one mailbox per user.

The mailbox PIN is never used: a user reaches their messages with *97 from their own device
(VoiceMailMain with option s, the endpoint identifies the user), and no dialplan path asks for a
PIN. It is still a value nobody can guess (derived from the user's device secrets), so turning on
a PIN-asking path later does not open every mailbox with a known default."""

from __future__ import annotations

import hashlib

from .conf import Section
from .model import Tenant, User


def _pin(slug: str, user: User) -> str:
    material = "\0".join([slug, user.extension, *(d.secret for d in user.devices)])
    return str(int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big") % 10**8).zfill(8)


def render(t: Tenant) -> list[str]:
    s = Section(t.slug)
    for user in t.users:
        s.raw(f"{user.extension} => {_pin(t.slug, user)},{user.display}")
    return [s.text()]
