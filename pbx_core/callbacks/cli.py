"""``pbx-core worker``: the callback worker against a real Asterisk."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..ami.client import AmiOptions
from ..ami.errors import AmiAuthError
from ..bridge import engine_settings
from ..config import AmiUrl, ConfigError, Settings
from ..provisioning import db
from ..signals import on_stop_signals

if TYPE_CHECKING:
    from .worker import CallbackWorker, SummarySink

log = logging.getLogger(__name__)

DESCRIPTION = """\
Run the callback scheduler for one Asterisk (PBX_AMI_URL): dial booked callbacks on free agents
at their place in line, within each queue's business hours, with retries; keep the expected-wait
and offer globals (PBX_EWT_*, PBX_OFFER_*) fresh for the dialplan; book callbacks from the
dialplan's PbxCallbackRequest events and, where a queue enables it, for abandoned callers.
Callbacks are stored in the provisioning database (PBX_DATABASE_URL); run `pbx-core db upgrade`
first. Run exactly one worker per Asterisk.

The AMI user needs read `agent,call,user` and write `call,agent` (Originate, QueuePause, Setvar,
Status, Hangup).

exit status: 0 after Ctrl-C/SIGTERM, 1 if the first login is refused, 2 on a configuration error.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="the callback worker: dials booked callbacks, keeps wait estimates fresh",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.ami_url is None:
        print(
            "pbx-core worker: PBX_AMI_URL is not set. Set it to ami://user:secret@host:5038 "
            "(a manager.conf user with originate rights).",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(_serve(settings))
    except AmiAuthError as exc:
        print(f"pbx-core worker: {exc}", file=sys.stderr)
        return 1
    return 0


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings,
    *,
    ami_url: AmiUrl | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    summary_sink: SummarySink | None = None,
) -> AsyncIterator[tuple[CallbackWorker, asyncio.Task[None]]]:
    """A callback worker running as a task for the block's duration: ``pbx-core worker``, or
    inside a bridge's process (``bridge --callbacks``, ``serve``, ``demo``) with the bridge's
    publisher as ``summary_sink``. Without ``sessions`` it opens PBX_DATABASE_URL itself."""
    from ..provisioning.cli import ensure_schema
    from .store import CallbackStore
    from .worker import CallbackWorker

    url = ami_url or settings.ami_url
    if url is None:
        raise ConfigError("PBX_AMI_URL is not set: the callback worker dials through Asterisk's AMI")
    async with contextlib.AsyncExitStack() as exits:
        if sessions is None:
            await ensure_schema(settings.database_url)
            sessions = await exits.enter_async_context(db.open_sessions(settings.database_url))
        worker = CallbackWorker(
            url,
            CallbackStore(sessions),
            sessions,
            ami=AmiOptions.from_settings(settings),
            engine=engine_settings(settings),
            summary_sink=summary_sink,
        )
        log.info("callback worker for AMI at %s", url)
        task = asyncio.create_task(worker.run(), name="callback-worker")
        try:
            yield worker, task
        finally:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _serve(settings: Settings) -> None:
    async with running_worker(settings) as (worker, task):
        with on_stop_signals(worker.stop):
            await task
