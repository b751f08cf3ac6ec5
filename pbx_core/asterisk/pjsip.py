"""pjsip.conf of one tenant: an endpoint, auth and aor per device, all named
``{slug}-{extension}-{device}`` (PJSIP allows one name for objects of different types)."""

from __future__ import annotations

from .conf import Section
from .model import Device, Tenant, User

# Desk phones and softphones: wideband first, then the G.711 codecs every phone and trunk has.
SIP_CODECS = "g722,alaw,ulaw"
# Browsers: Opus (passthrough is in core; transcoding needs codec_opus), ulaw to reach other legs.
WEBRTC_CODECS = "opus,ulaw"


def _endpoint(t: Tenant, user: User, device: Device, name: str) -> Section:
    s = Section(name).set("type", "endpoint")
    s.set("context", f"{t.slug}-internal")
    s.set("disallow", "all")
    s.set("allow", WEBRTC_CODECS if device.kind == "webrtc" else SIP_CODECS)
    s.set("aors", name).set("auth", name)
    s.set("callerid", f'"{user.display}" <{user.extension}>')
    s.set("mailboxes", f"{user.extension}@{t.slug}")
    # The dialplan knows whose device called (own voicemail via *97) without trusting caller ID.
    s.set("set_var", f"PBX_EXTEN={user.extension}")
    s.set("language", t.language)
    s.set("dtmf_mode", "rfc4733")
    # Phones sit behind NAT (home, office): answer where the packets came from, keep media on
    # Asterisk (queues, recordings) instead of re-inviting the phones to talk directly.
    s.set("direct_media", "no").set("rtp_symmetric", "yes").set("force_rport", "yes")
    s.set("rewrite_contact", "yes")
    if device.kind == "webrtc":
        # Shortcut for DTLS-SRTP with an auto-generated cert, ICE, AVPF and rtcp-mux.
        s.set("webrtc", "yes").set("transport", "transport-wss")
    # Desk phones and softphones set no transport: they may register over UDP or TCP and are
    # reached over the transport of their contact.
    return s


def _auth(device: Device, name: str) -> Section:
    # userpass is accepted by every Asterisk 22 release (22.2+ also knows "digest", same meaning).
    s = Section(name).set("type", "auth").set("auth_type", "userpass")
    return s.set("username", name).set("password", device.secret)


def _aor(name: str) -> Section:
    # One registration per device; a re-registering phone (new IP, browser reload) replaces the old.
    s = Section(name).set("type", "aor").set("max_contacts", 1).set("remove_existing", "yes")
    return s.set("qualify_frequency", 30)


def render(t: Tenant) -> list[str]:
    parts = []
    for user in t.users:
        for device in user.devices:
            name = f"{t.slug}-{user.extension}-{device.name}"
            parts += [_endpoint(t, user, device, name).text(), _auth(device, name).text(), _aor(name).text()]
    return parts
