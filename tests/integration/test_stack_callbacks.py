"""``serve``/``demo``'s stack with callbacks: one AMI session per PBX, and the callbacks' counts
published by the bridge's own publisher (real TCP to the simulator, a private real Redis, SQLite)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pbx_core.config import Settings
from pbx_core.provisioning import db
from pbx_core.provisioning.schemas import QueueIn
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimMember, SimulatedAsterisk
from pbx_core.stack import running_stack
from pbx_core.web.auth import Scope, StaticTokens
from tests.conftest import wait_until
from tests.integration.test_callbacks_worker import seed

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()


async def test_the_stack_runs_the_callbacks_on_the_bridges_one_ami_session(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stack.db'}"
    await seed(url, QueueIn.model_validate({"callback_offer": True}))
    settings = Settings.from_env({"PBX_DATABASE_URL": url})
    async with (
        SimulatedAsterisk(clock=SimClock.stepped(T0)) as sim,
        db.open_sessions(url) as sessions,
    ):
        sim.queue("acme-support")
        sim.add_member("acme-support", SimMember("Local/201@acme-agents/n", "201"), emit=False)
        tokens = StaticTokens({"t": Scope("acme")})
        async with running_stack(settings, sim.url, tokens, port=0, callback_sessions=sessions) as stack:
            callbacks = stack.callbacks
            assert callbacks is not None
            await asyncio.wait_for(callbacks.ready.wait(), 30)
            await wait_until(lambda: "acme-support" in stack.bridge.state.queues, "the first resync")
            # The callbacks' Setvar refresh and the bridge's resync went over the same login.
            await wait_until(lambda: "PBX_OFFER_acme_support" in sim.globals, "the offer global")
            assert sim.logins == 1 and len(sim.sessions) == 1
            assert stack.stats()["callbacks"]["setvars"] >= 2
