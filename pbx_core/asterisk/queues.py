"""queues.conf of one tenant: one ``[{slug}-{name}]`` per queue. Members are dynamic (QueueAdd
over AMI, persisted by app_queue), so no ``member=`` lines are ever written here."""

from __future__ import annotations

from typing import Any

from . import escape as esc
from .conf import Section
from .dialplan import SOUND_OFFER, exit_context
from .model import Tenant

STRATEGIES = frozenset({"ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "linear", "wrandom"})
# Not available = logged out or unreachable phone; paused agents still count (they come back).
NOBODY_THERE = "unavailable,invalid,unknown"
# How often a waiting caller hears the callback offer again (and may press 1).
OFFER_EVERY_S = 60


def _queue(t: Tenant, q: Any, name: str, field: str) -> Section:
    s = Section(f"{t.slug}-{name}")
    s.set("strategy", esc.choice(getattr(q, "strategy", None), STRATEGIES, f"{field}.strategy"))
    s.set("timeout", esc.integer(getattr(q, "ring_timeout_s", None), 5, 300, f"{field}.ring_timeout_s"))
    s.set("retry", 5)
    s.set("wrapuptime", esc.integer(getattr(q, "wrapup_s", None), 0, 600, f"{field}.wrapup_s"))
    sl = esc.integer(getattr(q, "service_level_s", None), 1, 3600, f"{field}.service_level_s")
    s.set("servicelevel", sl)
    position = esc.boolean(getattr(q, "announce_position", None), f"{field}.announce_position")
    s.set("announce-position", "yes" if position else "no")
    # Never Asterisk's own estimate (its average hold time): the dialplan announces our engine's
    # expected wait (announce_expected_wait) from the worker's PBX_EWT_* global instead.
    s.set("announce-holdtime", "no")
    s.set("announce-frequency", 60 if position else 0)
    s.set("min-announce-frequency", 15)
    if esc.boolean(getattr(q, "callback_offer", None), f"{field}.callback_offer"):
        # app_queue: a digit that matches an extension of `context` takes the caller out of the
        # queue to it; the exit context has only exten 1. The periodic announcement repeats the
        # offer (it is static; while the offer is closed, pressing 1 puts the caller back at
        # their place).
        s.set("context", exit_context(t.slug, name))
        s.set("periodic-announce", SOUND_OFFER)
        s.set("periodic-announce-frequency", OFFER_EVERY_S)
    if getattr(q, "overflow", None) is not None:
        # With an overflow, nobody logged in means "go to the overflow now", not "wait in vain".
        s.set("joinempty", NOBODY_THERE).set("leavewhenempty", NOBODY_THERE)
    else:
        s.set("joinempty", "yes").set("leavewhenempty", "no")
    s.set("ringinuse", "no")  # an agent already on a call is not rung
    s.set("autopause", "no")  # ring-no-answer does not pause an agent; supervisors decide
    s.set("setinterfacevar", "yes").set("setqueuevar", "yes")  # MEMBERNAME, QUEUENAME for reports
    return s


def render(t: Tenant) -> list[str]:
    return [_queue(t, q, name, field).text() for name, q, field in t.queues]
