"""``pbx-core history``: run the history writer on its own (``serve`` and ``demo`` run it inside)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from ..config import ConfigError, Settings, masked

log = logging.getLogger(__name__)

DESCRIPTION = """\
Follow every tenant's event stream in the Redis at PBX_REDIS_URL with a consumer group
("history") and write the calls and agent sessions to the database at PBX_DATABASE_URL (run
`pbx-core db upgrade` first): one row per queue call (caller, wait, outcome, agent, talk and
wrap-up time) and one per agent login, pause and missed ring. Writes in batches of
PBX_HISTORY_BATCH entries; a batch is acknowledged only once it is committed, and writing it
again changes nothing, so a crash or restart loses and duplicates nothing. Redis or database
outages are logged and waited out. Run one writer per deployment (`serve` and `demo` run one
inside; do not run this next to them on the same Redis).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "history",
        help="write the call history from the Redis bus to the database",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.redis_url:
        raise ConfigError(
            "PBX_REDIS_URL is not set: the history writer reads the bus of a running bridge "
            "(an embedded Redis is private to its process; `serve` and `demo` run the writer inside)"
        )
    try:
        return asyncio.run(_run(settings))
    except KeyboardInterrupt:
        return 0


async def _run(settings: Settings) -> int:
    from ..provisioning.cli import ensure_schema
    from ..provisioning.db import open_sessions, safe_url
    from ..stack import until_signal_or
    from .writer import running_writer

    await ensure_schema(settings.database_url)
    async with (
        open_sessions(settings.database_url) as sessions,
        running_writer(sessions, settings.redis_url, settings) as writer,
    ):
        print(
            f"pbx-core history: {masked(settings.redis_url)} → {safe_url(settings.database_url)}", flush=True
        )
        await until_signal_or(writer.task)
    return 0
