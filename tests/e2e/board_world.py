"""A busy tenant on the simulated Asterisk, for looking at the whole board: eight queues, agents
in every state (some paused, with long names), callers waiting and many abandoned ones with long
Dutch names, served through the real stack (simulator over TCP → bridge → Redis → web app)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pbx_core.config import Settings
from pbx_core.provisioning.db import open_sessions, upgrade
from pbx_core.provisioning.models import PauseReason, Queue, Reseller, Tenant
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimMember, SimulatedAsterisk
from pbx_core.stack import Stack, running_stack
from pbx_core.web.auth import Scope, StaticTokens
from pbx_core.web.provisioning import wallboard_labels
from tests.conftest import wait_until
from tests.e2e.conftest import TENANT, TOKEN

NAMES = ("support", "sales", "billing", "returns", "service", "orders", "helpdesk", "partners")
QUEUES = [f"{TENANT}-{n}" for n in NAMES]
AGENTS = [
    ("Fatima Janssen-El Amrani", False, ""),
    ("Jan-Willem van der Berg", True, "lunch"),
    ("Sanne de Vries", False, ""),
    ("Mohammed Bouzid", True, "training"),
    ("Ingrid Verhoeven-Smit", False, ""),
    ("Pieter Bakker", True, "meeting"),
    ("Lotte Visser", False, ""),
    ("Kevin Mulder", False, ""),
    ("Annemarie Hendriks-Koster", True, "break"),
    ("Daan Smit", False, ""),
    ("Yasmina El Idrissi", False, ""),
    ("Thomas de Graaf", False, ""),
]
CALLERS = [
    ("Jan de Vries-Hoogeveen", "0509811234"), ("Ruud van 't Hof", "+31612345678"),
    ("Marieke Schouten", "0201234567"), ("", "0612345670"), ("Bram van Leeuwen", "0107654321"),
    ("Els Kuipers-Meijer", "0031505551234"), ("Hendrik Dijkstra", "0582123456"),
    ("Sophie van den Heuvel", "0402987654"), ("Gerrit Jansen", "0703456789"),
    ("Wilhelmina de Boer-Postma", "+32470123456"), ("Joost Brouwer", "0302345678"),
    ("Fenna Bosma", "0612987654"), ("Koen Vermeulen", "0135551212"), ("Noor Yilmaz", "0655512345"),
    ("Maarten de Wit", "0243334444"), ("Anouk Peters", "0383216549"), ("Stijn Willems", "0765554433"),
    ("Lieke van Dam", "0629876543"), ("Ahmed Benali", "0107771234"), ("Iris Vos", "0205559876"),
]  # fmt: skip
WAITING = 9  # callers of CALLERS still waiting; the rest abandoned


def scoped_url(stack: Stack, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"token": TOKEN, **params}.items())
    return f"{stack.base_url}/?{query}"


TENANT_NAME = "Acme Bakery"
PAUSE_LABELS = {"lunch": "Lunch", "training": "Training", "meeting": "Team meeting", "break": "Coffee break"}


async def provisioned(url: str) -> None:
    """The tenant as its reseller set it up: its name, its queues (named as people say them, but
    one, which keeps its slug) and its pause reasons."""
    await upgrade(url)
    async with open_sessions(url) as sessions, sessions() as session:
        reseller = Reseller(name="Reseller")
        tenant = Tenant(reseller=reseller, slug=TENANT, name=TENANT_NAME, timezone="Europe/Amsterdam",
                        language="en", limits={})  # fmt: skip
        session.add(tenant)
        await session.flush()
        for name in NAMES:
            settings = {} if name == "partners" else {"display_name": name.capitalize()}
            session.add(Queue(tenant_id=tenant.id, name=name, settings=settings))
        for code, label in PAUSE_LABELS.items():
            session.add(PauseReason(tenant_id=tenant.id, code=code, label=label))
        await session.commit()


@asynccontextmanager
async def busy_board(tmp_path: Path) -> AsyncIterator[tuple[SimulatedAsterisk, Stack]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'board.db'}"
    await provisioned(url)
    async with (
        SimulatedAsterisk(clock=SimClock(time.time(), speed=1.0)) as sim,
        open_sessions(url) as sessions,
    ):
        for queue in QUEUES:
            sim.queue(queue)
        for i, (name, paused, reason) in enumerate(AGENTS):
            for queue in (QUEUES[i % len(QUEUES)], QUEUES[(i + 3) % len(QUEUES)]):
                m = SimMember(f"Local/{201 + i}@t1-agents/n", name, paused=paused, reason=reason,
                              last_pause=int(sim.now()) - 300 if paused else 0)  # fmt: skip
                sim.add_member(queue, m, emit=False)
        tokens = StaticTokens({TOKEN: Scope(TENANT)})
        labels = wallboard_labels(sessions)
        async with running_stack(
            Settings.from_env({}), sim.url, tokens, host="127.0.0.1", port=0, labels=labels
        ) as stack:
            await wait_until(lambda: len(stack.bridge.state.queues) == len(QUEUES), "the first resync")
            abandoned = []
            for i, (name, number) in enumerate(CALLERS):
                # Those who hang up called support or billing: long lists with 1 queue and on page 1.
                queue = QUEUES[i % len(QUEUES)] if i < WAITING else (QUEUES[0], QUEUES[2])[i % 2]
                caller = sim.join(queue, number, name, waited_s=10 + 7 * i)
                if i >= WAITING:
                    abandoned.append((queue, caller.uniqueid))
            for queue, uniqueid in abandoned:
                sim.leave(queue, uniqueid, abandon=True)
            engine = stack.bridge.state
            await wait_until(
                lambda: sum(len(q.abandoned) for q in engine.queues.values()) == len(abandoned),
                "the abandons in the engine",
            )
            await stack.publisher.flush()
            yield sim, stack
